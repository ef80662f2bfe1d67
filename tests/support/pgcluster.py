"""A throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks.

Uses the server binaries of the machine (Debian's `postgresql` package); `.ci/run`
installs them. As root, the server runs as the `postgres` user, which initdb requires.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    for candidate in ("pg_ctl", "initdb"):
        found = shutil.which(candidate)
        if found and shutil.which("initdb"):
            return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(versions[0]).parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """initdb + pg_ctl start; `url` is an asyncpg SQLAlchemy URL to database `careline`."""

    def __init__(
        self,
        bindir: Path,
        *,
        max_connections: int = 200,
        durable: bool = False,
        track_statements: bool = False,
    ) -> None:
        self.bindir = bindir
        self.durable = durable
        # pg_stat_statements: what the server ran, whichever way the client sent it (tests).
        self.track_statements = track_statements
        self.root = Path(tempfile.mkdtemp(prefix="careline-pg-"))
        self.datadir = self.root / "data"
        self.port = free_port()
        self.max_connections = max_connections
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> PgCluster:
        if self._as_root:
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "--no-sync",
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        # Tests throw the data away; `durable` keeps PostgreSQL's safe defaults (benchmarks).
        unsafe = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        options = (
            f"-k {self.root} -h 127.0.0.1 -p {self.port} {'' if self.durable else unsafe}"
            f"-c max_connections={self.max_connections}"
            + (" -c shared_preload_libraries=pg_stat_statements" if self.track_statements else "")
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )
        self.psql("CREATE DATABASE careline")
        if self.track_statements:
            self.psql("CREATE EXTENSION pg_stat_statements", database="careline")
        return self

    def psql(self, sql: str, database: str = "postgres") -> str:
        psql = self.bindir / "psql"
        exe = str(psql) if psql.exists() else "psql"
        result = self._run(
            exe, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
            "-v", "ON_ERROR_STOP=1", "-Atc", sql,
        )  # fmt: skip
        return result.stdout

    def url(self, database: str = "careline", driver: str = "asyncpg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "stop",
                  check=False)  # fmt: skip

    def restart_server(self) -> None:
        """Stop and start the same cluster (for outage tests)."""
        self.stop()
        time.sleep(0.2)
        options = f"-k {self.root} -h 127.0.0.1 -p {self.port} -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-o", options,
                  "-l", str(self.root / "server.log"), "-w", "start")  # fmt: skip

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
