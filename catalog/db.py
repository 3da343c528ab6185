"""The catalog's database: an engine for settings.catalog_dsn, and its migrations.

SQLite (the default, a file under HUB_HOME) gets foreign keys, WAL, and
`BEGIN IMMEDIATE` for every write transaction: a writer takes the write lock
before it reads, so two writers queue on the busy timeout instead of one
failing with "database is locked" when it upgrades a read lock. Reads begin
deferred, so they never wait for a writer (WAL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection

from core.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
# Execution option marking a read-only transaction (see module docstring).
READ_ONLY = "catalog_read_only"
SQLITE_BUSY_SECONDS = 30.0
VERSION_TABLE = "catalog_alembic_version"  # the catalog may share a database with others
# Any constant: PostgreSQL's advisory lock that makes concurrent migrations queue.
_MIGRATION_LOCK = 0x6875625F636174  # "hub_cat"


def normalise_url(url: str) -> str:
    """postgresql://… means psycopg 3 here (SQLAlchemy would pick psycopg2)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def create_catalog_engine(url: str) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})
    _sqlite_transactions(engine)
    return engine


def engine_for(settings: Settings) -> Engine:
    return create_catalog_engine(settings.catalog_dsn)


def _sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is switched off: the "begin" hook issues ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_SECONDS * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic `upgrade head`), in one transaction."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), "head")


def current_revision(engine: Engine) -> str | None:
    with engine.execution_options(**{READ_ONLY: True}).connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
