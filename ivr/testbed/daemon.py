"""A program from Debian's packages that the test bed runs as a foreground child process.

Kamailio and HAProxy are started the same way: find the program, have it check the config
the test bed wrote (`-c -f`), start it in a process group of its own with its output in a
log in its folder, and wait until it answers. `stop()` ends it with SIGTERM, and kills
its whole group if it does not end. A subclass says how the program is called and when it
answers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

from ivr.errors import AsteriskError

READY_TIMEOUT = 20.0  # seconds a program has to answer after it started
STOP_TIMEOUT = 10.0


class Daemon:
    """One program (`name`, e.g. "haproxy") on a config the test bed writes into `folder`."""

    name = ""
    what = ""  # how `ready()` is described when it never comes: "answer OPTIONS on"

    def __init__(self, folder: Path, *, port: int, host: str = "127.0.0.1"):
        self.folder = folder
        self.host, self.port = host, port
        self.process: Optional[subprocess.Popen] = None

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    def write_config(self) -> Path:
        """Write the program's config into the folder; its path."""
        raise NotImplementedError

    def arguments(self, config: Path) -> list[str]:
        """The arguments that run the program in the foreground on `config`."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the started program answers."""
        raise NotImplementedError

    def before_start(self) -> None:
        """Clear what a killed run left behind (a control socket)."""

    def binary(self) -> str:
        found = shutil.which(self.name) or next((str(p) for p in [Path("/usr/sbin") / self.name] if p.is_file()), None)
        if found is None:
            raise AsteriskError(f"{self.name} is missing: run `scripts/bootstrap.sh test` (it installs Debian's {self.name})")
        return found

    def start(self) -> "Daemon":
        binary = self.binary()
        config = self.write_config()
        check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise AsteriskError(f"{self.name} refuses its config {config}:\n{(check.stderr or check.stdout)[-3000:]}")
        self.before_start()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([binary, *self.arguments(config)], stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AsteriskError(f"{self.name} did not {self.what} {self.host}:{self.port} within "
                                    f"{READY_TIMEOUT:g}s:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"({self.name} wrote no log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            # its own process group (start_new_session): the main process and its children
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
