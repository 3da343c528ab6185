"""The catalog service on SQLite (the default catalog), one fresh database file per test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_cases import TWILIO, CatalogCases, with_twilio
from pydantic import SecretStr
from sqlalchemy import text

from catalog.db import create_catalog_engine, current_revision, migrate
from catalog.service import CatalogService
from core.crypto import KeyringError, format_master_key, new_master_key
from core.settings import Settings


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[CatalogService]:
    service = CatalogService.open(
        Settings(home=tmp_path, catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}")
    )
    yield service
    service.close()


class TestSqliteCatalog(CatalogCases):
    pass


def test_the_default_catalog_is_an_sqlite_file_in_wal_mode_with_foreign_keys(
    tmp_path: Path,
) -> None:
    service = CatalogService.open(Settings(home=tmp_path))
    assert (tmp_path / "catalog.db").exists() and (tmp_path / "master-keys.json").exists()
    with service.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    assert current_revision(service.engine) == "0001"
    migrate(service.engine)  # a second run changes nothing
    assert current_revision(service.engine) == "0001"
    service.close()


def test_writers_in_two_threads_both_commit(tmp_path: Path) -> None:
    # BEGIN IMMEDIATE: the second writer waits for the first instead of failing "locked".
    settings = Settings(home=tmp_path)
    services = [CatalogService.open(settings) for _ in range(2)]
    services[0].create_tenant("greenwood")
    errors: list[BaseException] = []

    def write(service: CatalogService, prefix: str) -> None:
        try:
            for i in range(15):
                service.add_account("greenwood", f"{prefix}-{i}", "twilio", dict(TWILIO))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(s, p)) for s, p in zip(services, "ab", strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert services[0].get_tenant("greenwood").version == 31
    for service in services:
        service.close()


def test_keys_from_hub_master_keys_are_rewrapped_not_rotated(tmp_path: Path) -> None:
    first, second = new_master_key(), new_master_key()
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    one = Settings(home=tmp_path, catalog_url=url, master_keys=format_master_key(first))
    service = CatalogService.open(one)
    with_twilio(service)
    with pytest.raises(KeyringError, match=r"HUB_MASTER_KEYS.*hub keys rewrap"):
        service.rotate_master_key()
    with pytest.raises(KeyringError, match="HUB_MASTER_KEYS"):
        service.retire_master_key(first.key_id)
    assert not (tmp_path / "master-keys.json").exists()
    keys = f"{format_master_key(first)},{format_master_key(second)}"
    both = one.model_copy(update={"master_keys": SecretStr(keys)})
    service = CatalogService.open(both)
    report = service.rewrap_all()
    assert (report.primary_key_id, report.accounts_rewrapped) == (second.key_id, 1)
    assert service.master_key_usage() == {first.key_id: 0, second.key_id: 1}
    assert service.rewrap_all().accounts_rewrapped == 0
    assert service.load_tenant("greenwood").secret_values() == ["tw-token-1"]


def test_postgresql_urls_use_psycopg_3() -> None:
    engine = create_catalog_engine("postgresql://hub@127.0.0.1:1/catalog")
    assert engine.dialect.driver == "psycopg"
