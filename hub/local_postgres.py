"""A local PostgreSQL for the ERP demo source and tests, from Debian's package.

`initdb` refuses to run as root, so when the hub runs as root the cluster is
owned by (and every server command runs as) the `postgres` user, with its
data under a directory that user can reach (/var/tmp by default: /root is
closed to it). The cluster is for development: it listens on 127.0.0.1
only, trusts local connections, and has `wal_level=logical` for Debezium.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.ports import port_is_free
from hub.local_kafka import server_env

SERVER_USER = "postgres"
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


class PostgresSetupError(RuntimeError):
    pass


def pg_bin_dir() -> Path:
    def version(initdb: Path) -> int:
        name = initdb.parent.parent.name
        return int(name) if name.isdigit() else 0

    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if not versions:
        raise PostgresSetupError(
            "the PostgreSQL server is not installed (Debian: apt-get install postgresql); "
            "`make` installs it, or set HUB_POSTGRES_DSN to use your own server"
        )
    return versions[-1].parent


def running_as_root() -> bool:
    return os.geteuid() == 0


def default_root(home: Path) -> Path:
    # /var/tmp: reachable by the postgres user (unlike /root) and kept across reboots.
    shared = Path("/var/tmp/integration-hub/postgres")  # noqa: S108 - a fixed, documented place
    return shared if running_as_root() else home / "postgres"


@dataclass(frozen=True)
class PostgresConfig:
    root: Path
    port: int = 15432
    database: str = "school_erp"
    user: str = "hub"

    def __post_init__(self) -> None:
        for name in (self.database, self.user):
            if not IDENTIFIER.fullmatch(name):
                raise PostgresSetupError(f"{name!r} must be a plain SQL identifier")

    @property
    def data_dir(self) -> Path:
        return self.root / f"pg-{self.port}"

    @property
    def log_file(self) -> Path:
        return self.root / f"pg-{self.port}.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"


def server_settings(cfg: PostgresConfig) -> str:
    return "\n".join(
        [
            "listen_addresses = '127.0.0.1'",
            f"port = {cfg.port}",
            f"unix_socket_directories = '{cfg.data_dir}'",
            # Debezium reads the WAL through a logical replication slot (pgoutput).
            "wal_level = logical",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            # A development cluster: durability is traded for speed.
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "",
        ]
    )


HBA = """# development cluster: loopback only, trusted
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


class LocalPostgres:
    def __init__(self, cfg: PostgresConfig) -> None:
        self.cfg = cfg
        self.bin = pg_bin_dir()

    def _as_server_user(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if running_as_root() else []
        result = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, check=False, env=server_env()
        )
        if check and result.returncode != 0:
            output = result.stdout + result.stderr
            raise PostgresSetupError(f"{Path(argv[0]).name} failed:\n{output}")
        return result

    def _prepare_root(self) -> None:
        self.cfg.root.mkdir(parents=True, exist_ok=True)
        if running_as_root():
            owner = pwd.getpwnam(SERVER_USER)
            for path in (self.cfg.root, *self.cfg.root.parents):
                if path == Path("/"):
                    break
                if path == self.cfg.root:
                    os.chown(path, owner.pw_uid, owner.pw_gid)
                elif not os.stat(path).st_mode & 0o001:
                    raise PostgresSetupError(
                        f"{path} is closed to the {SERVER_USER} user; choose HUB_POSTGRES_DIR "
                        "under /var/tmp or /tmp"
                    )

    def running(self) -> bool:
        result = self._as_server_user(
            str(self.bin / "pg_ctl"), "status", "-D", str(self.cfg.data_dir), check=False
        )
        return result.returncode == 0

    def up(self, timeout: float = 60.0) -> None:
        if self.cfg.data_dir.exists() and self.running():
            return
        if not port_is_free(self.cfg.port):
            raise PostgresSetupError(
                f"port {self.cfg.port} on 127.0.0.1 is taken: stop what uses it or set "
                "HUB_POSTGRES_PORT (or HUB_POSTGRES_DSN to use a running server)"
            )
        self._prepare_root()
        if not (self.cfg.data_dir / "PG_VERSION").exists():
            self._as_server_user(
                str(self.bin / "initdb"),
                "-D",
                str(self.cfg.data_dir),
                "-U",
                self.cfg.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            )
        self._write_config()
        self._as_server_user(
            str(self.bin / "pg_ctl"),
            "start",
            "-w",
            "-t",
            str(int(timeout)),
            "-D",
            str(self.cfg.data_dir),
            "-l",
            str(self.cfg.log_file),
        )
        try:
            self._create_database()
        except BaseException:
            self.down()  # a half-set-up server must not outlive its caller
            raise

    def _write_config(self) -> None:
        (self.cfg.data_dir / "postgresql.auto.conf").write_text(server_settings(self.cfg))
        (self.cfg.data_dir / "pg_hba.conf").write_text(HBA)
        if running_as_root():
            owner = pwd.getpwnam(SERVER_USER)
            for name in ("postgresql.auto.conf", "pg_hba.conf"):
                os.chown(self.cfg.data_dir / name, owner.pw_uid, owner.pw_gid)

    def _psql(self, sql: str, database: str = "postgres") -> str:
        return self._as_server_user(
            str(self.bin / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.cfg.port),
            "-U",
            self.cfg.user,
            "-d",
            database,
            "-tAc",
            sql,
        ).stdout.strip()

    def _create_database(self) -> None:
        # The name is a validated identifier (PostgresConfig), not input.
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.cfg.database}'")  # noqa: S608
        if exists != "1":
            self._psql(f'CREATE DATABASE "{self.cfg.database}"')

    def down(self, timeout: float = 30.0) -> bool:
        if not self.cfg.data_dir.exists() or not self.running():
            return False
        self._as_server_user(
            str(self.bin / "pg_ctl"),
            "stop",
            "-m",
            "fast",
            "-w",
            "-t",
            str(int(timeout)),
            "-D",
            str(self.cfg.data_dir),
        )
        return True

    def destroy(self) -> None:
        self.down()
        shutil.rmtree(self.cfg.data_dir, ignore_errors=True)
        self.cfg.log_file.unlink(missing_ok=True)
