"""A throwaway PostgreSQL server for tests and the soak benchmark: its own cluster in a temp folder, on a free port.

Debian's `postgresql` package (installed by `scripts/bootstrap.sh test`) ships initdb and
postgres in /usr/lib/postgresql/<version>/bin; the newest version there is used (or the
folder in $IVR_PG_BINDIR). PostgreSQL refuses to run as root, so when the tests run as
root the server runs as an unprivileged OS user: $IVR_PG_USER, else `postgres` (the
package creates it), else `ivrtest`, created with `useradd --system` if missing. The
switch is done by subprocess itself (setuid/setgid in the child, supplementary groups
dropped), so neither sudo nor runuser is needed. The cluster lives in a folder made by
`tempfile.mkdtemp` (not pytest's tmp_path, whose parents are private to root), given to
that user, and removed at the end.

The server listens on 127.0.0.1 only (no Unix socket), trusts local connections, and
runs without fsync: it holds test data only. It is a child of the test process, stopped
with a fast shutdown at the end and killed if it does not stop.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

SUPERUSER = "ivr"
START_TIMEOUT = 60.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be started; the message says why."""


def find_bindir() -> Path:
    env = os.environ.get("IVR_PG_BINDIR")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "postgres").is_file():
            return Path(folder)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable(
        "PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb "
        "(run `scripts/bootstrap.sh test`, which installs Debian's postgresql package)")


def _version(folder: str) -> tuple[int, ...]:
    name = Path(folder).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)


def server_user() -> Optional[pwd.struct_passwd]:
    """The OS user to run the server as; None to run as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    names = [os.environ["IVR_PG_USER"]] if os.environ.get("IVR_PG_USER") else ["postgres", "ivrtest"]
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    name = names[-1]
    result = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                             "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True)
    if result.returncode != 0 and "already exists" not in result.stderr:
        raise PostgresUnavailable(f"cannot create the OS user {name!r} to run PostgreSQL as: {result.stderr.strip()}")
    return pwd.getpwnam(name)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: Path
    folder: Path
    port: int
    user: Optional[pwd.struct_passwd]
    process: Optional[subprocess.Popen] = None
    started_in: float = 0.0
    _dbs: int = field(default=0)
    _logfile: Optional[object] = None

    @property
    def datadir(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _as_user(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": [],
                "env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.folder)}}

    def start(self) -> None:
        began = time.monotonic()
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        init = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            cwd=self.folder, capture_output=True, text=True, **self._as_user())
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# ivr tests\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "max_connections = 100\nshared_buffers = 64MB\n")
        self._logfile = open(self.log, "ab")
        self.process = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)],
            cwd=self.folder, stdout=self._logfile, stderr=subprocess.STDOUT, **self._as_user())
        self._wait_ready(began + START_TIMEOUT)
        self.started_in = time.monotonic() - began

    def _wait_ready(self, deadline: float) -> None:
        import psycopg

        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited with {self.process.returncode}: {self._log_tail()}")
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                                     connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = str(exc).strip()
            time.sleep(0.05)
        raise PostgresUnavailable(f"postgres did not accept connections in {START_TIMEOUT:.0f} s ({last}): "
                                  f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-8:])
        except OSError:
            return "(no log)"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        self._dbs += 1
        name = f"test_{self._dbs}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._logfile is not None:
            self._logfile.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """Start a new cluster; raise PostgresUnavailable with the reason when it cannot."""
    bindir = find_bindir()
    user = server_user()
    for attempt in range(3):  # a free port can be taken between the look and the bind
        server = PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="ivr-pg-")), free_port(), user)
        try:
            server.start()
            return server
        except PostgresUnavailable as exc:
            server.stop()
            if "could not bind" not in str(exc) and "already in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")
