"""The README's first real call, as a newcomer runs it: the test bed up, `ivr serve` running
as a process, and `.venv/bin/ivr call 1 1` typed exactly as README.md prints it. The call
must press 1 (Polish) over the language menu and 1 (sales) over the main menu, and be
stored as a call that reached sales.

The installation is the repository's own with the office open around the clock (see
live_support.live_installation), named by IVR_CONFIG for both `ivr serve` and `ivr call`:
whatever the day and hour CI runs, "now" is within opening hours on both sides, and the
command itself stays as the README writes it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from ivr.settings.config import load_config
from ivr.store.db import create_db_engine
from ivr.store.models import Call, CallEvent
from ivr.testbed.server import REPO
from .live_support import live_installation, serve_process
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk


def _readme_call_command() -> list[str]:
    """The `ivr call` line of README.md's first-call block, as words."""
    lines = re.findall(r"^\.venv/bin/ivr call .*$", (REPO / "README.md").read_text(encoding="utf-8"), re.M)
    assert len(lines) == 1, f"README.md should show one `ivr call` command, not {lines}"
    return shlex.split(lines[0])


def _stored_call(config_path, timeout: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one call of the installation's database, with its events, once it has an outcome."""
    db = create_db_engine(load_config(config_path).raw["database"])
    deadline = time.monotonic() + timeout
    try:
        while True:
            with db.connect() as conn:
                calls = [dict(row) for row in conn.execute(sa.select(Call.__table__)).mappings()]
                if len(calls) == 1 and calls[0]["outcome"] is not None:
                    query = sa.select(CallEvent.__table__).where(CallEvent.call_id == calls[0]["id"])
                    events = [CallEvent(**row).to_dict() for row in conn.execute(query.order_by(CallEvent.seq)).mappings()]
                    return calls[0], events
            if time.monotonic() > deadline:
                raise AssertionError(f"no finished call in the database after {timeout:g}s: {calls}")
            time.sleep(0.5)
    finally:
        db.dispose()


def test_the_readme_call_reaches_sales(testbed: "Testbed", tmp_path):
    command = _readme_call_command()
    assert command == [".venv/bin/ivr", "call", "1", "1"]
    assert (REPO / command[0]).resolve() == IVR.resolve()  # the venv these tests run in
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                           capture_output=True, text=True, cwd=REPO)
    assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"
    config_path = live_installation(tmp_path, testbed)
    (tmp_path / "flows").symlink_to(REPO / "flows", target_is_directory=True)  # the installation's flows/
    recordings_before = set(testbed.recordings_dir.glob("*/*.wav"))
    try:
        with serve_process(testbed, config_path, tmp_path / "serve.log") as env:
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{shlex.join(command)} failed:\n{output}"
            call, events = _stored_call(config_path, timeout=60)
        log = (tmp_path / "serve.log").read_text(errors="replace")
    finally:  # the test's recording leaves the installation's folder with it
        for path in set(testbed.recordings_dir.glob("*/*.wav")) - recordings_before:
            path.unlink(missing_ok=True)
    # what the user was told: each key's moment and the menu listening for it
    assert re.search(r"^key 1 at \d+\.\d s \(menu language, during its prompt\)$", output, re.M), output
    assert re.search(r"^key 1 at \d+\.\d s \(menu main_menu, during its prompt\)$", output, re.M), output
    assert "then the call goes to sales" in output and "call ended after" in output, output
    # what the engine stored: both menus, both keys, the transfer to sales
    path = [e["node"] for e in events if e["type"] == "node_entered"]
    assert path[:6] == ["welcome", "open_check", "vip_check", "language", "main_menu", "sales"], (path, log)
    assert [(e["node"], e["key"]) for e in events if e["type"] == "key"] == [("language", "1"), ("main_menu", "1")]
    assert call["keys"] == "1 1" and call["language"] == "pl", call
    assert call["department"] == "sales", call
    [transfer] = [e for e in events if e["type"] == "transfer"]
    assert transfer["department"] == "sales"
    assert call["caller"] == "48221234567"  # the README command's own caller
