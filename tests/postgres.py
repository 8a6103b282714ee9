"""A throwaway PostgreSQL server for the tests: initdb into a temporary directory, a free loopback
port, unix sockets in that directory, stopped and removed at the end.

The audit ledger must be tested on the database it runs on in production, not on a mock: SQL that
SQLite takes (types, placeholders, conflicts, time zones) may be refused or read differently by
PostgreSQL. The server binaries come from Debian's `postgresql` package (`make test` installs it;
they live in /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to run as root, so as root the
server runs as the `postgres` system user that package creates, through `runuser`.

Anything that stops the server from starting raises `PostgresUnavailable` with the exact reason
(the command, its output, the server's log): the fixture fails with it, never skips.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from bus.tooling.kafka_local import free_port

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
SYSTEM_USER = "postgres"  # created by Debian's postgresql package
SUPERUSER = "postgres"
HOST = "127.0.0.1"
# A test server: durability is not what is tested, start-up and commits should be quick.
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c shared_buffers=16MB -c max_connections=40"
)


class PostgresUnavailable(Exception):
    """The server could not be had; the message says exactly why and how to fix it."""


def find_bindir() -> Path:
    """The directory of initdb, pg_ctl and postgres: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin that has all three."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], check=False, capture_output=True, text=True
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_of, reverse=True)
    candidates += [Path(path) for path in versions]
    for bindir in candidates:
        if all((bindir / name).is_file() for name in SERVER_BINARIES):
            return bindir
    looked = ", ".join(str(path) for path in candidates) or "no pg_config, no /usr/lib/postgresql"
    raise PostgresUnavailable(
        f"the PostgreSQL server binaries ({', '.join(SERVER_BINARIES)}) were not found "
        f"(looked in: {looked}). `make test` installs them; by hand, as root: "
        "apt-get install --no-install-recommends postgresql"
    )


def _version_of(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


class PostgresServer:
    """One server in its own temporary directory, on a free loopback port."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.port = free_port(HOST)
        self.as_root = os.geteuid() == 0
        # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, which `postgres` cannot enter.
        self.base = Path(tempfile.mkdtemp(prefix="tthc-postgres-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.started = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def start(self) -> None:
        if self.as_root:
            self._hand_over_to_system_user()
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.base} {SERVER_OPTIONS}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip
        self.started = True

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if self.started:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
                self.started = False
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _hand_over_to_system_user(self) -> None:
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, and PostgreSQL refuses to run as root; the system user "
                f"{SYSTEM_USER!r} (created by Debian's postgresql package) does not exist. "
                "Reinstall it: apt-get install --reinstall postgresql-common"
            ) from None
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root, and `runuser` (util-linux) is not found")
        os.chown(self.base, user.pw_uid, user.pw_gid)

    def _run(self, binary: str, *args: str) -> None:
        command = [str(self.bindir / binary), *args]
        if self.as_root:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=self.base)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresUnavailable(
                f"`{' '.join(command)}` failed (exit {result.returncode}): {output}"
                + self._log_tail()
            )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(tail) if tail else ""


def start_server(database: str) -> tuple[PostgresServer, str]:
    """A started server and the URL of a new, empty database on it; nothing left behind if it
    cannot be had (`PostgresUnavailable`)."""
    server = PostgresServer()
    try:
        server.start()
        return server, server.create_database(database)
    except Exception as exc:
        server.stop()
        if isinstance(exc, PostgresUnavailable):
            raise
        raise PostgresUnavailable(f"the test server started, but: {exc}") from None
