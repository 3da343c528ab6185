"""The catalog service's cases (tests/catalog_cases.py) on PostgreSQL, the production catalog:
a database of this module's own on the session's local server, emptied before each test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalog_cases import CatalogCases, fresh_database, outbox
from sqlalchemy import text

from catalog.errors import ConflictError
from catalog.service import CatalogService
from core.settings import Settings
from hub.local_postgres import LocalPostgres

TABLES = "tenants, accounts, routing, api_keys, catalog_outbox"


@pytest.fixture(scope="module")
def catalog_url(postgres: LocalPostgres) -> Iterator[str]:
    with fresh_database(postgres.cfg.dsn) as url:
        yield url


@pytest.fixture
def catalog(catalog_url: str, tmp_path: Path) -> Iterator[CatalogService]:
    service = CatalogService.open(Settings(home=tmp_path, catalog_url=catalog_url))
    with service.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    yield service
    service.close()


class TestPostgresCatalog(CatalogCases):
    pass


def test_the_catalog_lives_in_postgresql(catalog: CatalogService) -> None:
    assert catalog.engine.dialect.name == "postgresql"
    assert catalog.engine.dialect.driver == "psycopg"


def test_concurrent_changes_to_one_tenant_all_count(catalog: CatalogService) -> None:
    # The tenant row is locked FOR UPDATE: no two changes read the same version.
    catalog.create_tenant("greenwood")
    errors: list[BaseException] = []

    def rename(i: int) -> None:
        try:
            for j in range(10):
                catalog.update_tenant("greenwood", name=f"school {i}-{j}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rename, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert catalog.get_tenant("greenwood").version == 41
    assert len(outbox(catalog)) == 41


def test_two_creates_of_one_tenant_make_one_tenant_and_one_conflict(
    catalog: CatalogService,
) -> None:
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def create() -> None:
        start.wait(10)
        try:
            catalog.create_tenant("greenwood")
            outcomes.append("created")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "created"]
    assert catalog.get_tenant("greenwood").version == 1
