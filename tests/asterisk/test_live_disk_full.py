"""A full disk under the recordings, on real calls through the test bed's Asterisk.

The recordings folder is a small tmpfs for the test (mounted where the engine and the QA
index see it, and bound into the test bed's root where Asterisk's MixMonitor writes), filled
so that it is full from the start of a call, or fills up in the middle of one. What must
hold: the call goes on as if nothing happened (the caller hears the welcome and the
language menu, and the record is stored with its outcome); the recordings index reports the file with a clear error instead
of indexing it, so QA never gets a half-written recording as if it were whole; and once
space is back the next call is recorded and indexed as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from ivr.recordings.index import index_recordings
from ivr.settings.config import load_config
from ivr.web.housekeeping import index_once
from ivr.testbed.ami_session import AmiSession
from .live_support import Caller, live_installation, serving, wait_for_outcomes
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

SIZE_KB = 2048  # the tmpfs
FULL, FILLS, ROOM = "482200901", "482200902", "482200903"
# no key: the welcome (6.7 s) and the language menu play, and the caller hangs up there,
# 18 s in; short calls, and what they hear is the flow going on as usual
KEYS, HOLD = "", 16


def _run(*argv: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.stdout.strip()} "
                    "(the test needs to mount a tmpfs, as the test bed mounts its folders)", pytrace=False)


@contextlib.contextmanager
def small_disk(testbed: "Testbed") -> Iterator[Path]:
    """The test bed's recordings folder on a tmpfs of SIZE_KB, for the engine and Asterisk alike."""
    host = testbed.recordings_dir
    inside = testbed.root / host.relative_to("/")
    _run("mount", "-t", "tmpfs", "-o", f"size={SIZE_KB}k,mode=0755", "ivr-disk-full", str(host))
    try:
        _run("mount", "--bind", str(host), str(inside))
        try:
            yield host
        finally:
            subprocess.run(["umount", str(inside)], capture_output=True)
    finally:
        subprocess.run(["umount", str(host)], capture_output=True)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of `folder` until `leave` bytes are free (tmpfs counts pages)."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / "filler", "ab") as out:
        out.write(b"\0" * max(0, free - leave))


def call(testbed: "Testbed", srv, number: str) -> dict:
    with AmiSession(testbed.ami_host, testbed.ami_port) as ami:
        ami.login(testbed.ami_username, testbed.ami_secret)
        Caller("ami", number, "Disk full", keys=KEYS, hold=HOLD).place(testbed, ami)
    [row] = wait_for_outcomes(srv, [number], timeout=120).values()
    return srv.record(row["id"])


def test_a_full_disk_under_the_recordings(testbed: "Testbed", tmp_path: Path, caplog):
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    config_path = live_installation(tmp_path, testbed)
    config = load_config(config_path)
    with small_disk(testbed) as disk:
        with serving(testbed, config_path) as srv:
            fill(disk, 0)
            full = call(testbed, srv, FULL)  # full from the start
            (disk / "filler").unlink()
            fill(disk, 60_000)  # room for some 4 s of the call's audio
            fills = call(testbed, srv, FILLS)
            report = index_recordings(config, settle_seconds=0, finished_after=0)
            (disk / "filler").unlink()  # space is back
            room = call(testbed, srv, ROOM)
            with caplog.at_level(logging.WARNING, logger="ivr.web.housekeeping"):
                index_once(config)
                index_once(config)  # the next run names nothing again
            after = index_recordings(config, settle_seconds=0, finished_after=0)
            sizes = {p.name: p.stat().st_size for p in disk.rglob("*.wav")}
    records = {"full": full, "fills": fills, "room": room}
    # the calls went on as if nothing happened: each caller heard the welcome and the language
    # menu, and hung up there
    for name, record in records.items():
        assert record["call"]["outcome"] == "abandoned", (name, record["call"])
        assert record["nodes"][:1] == ["welcome"] and "language" in record["nodes"], (name, record["nodes"])
        assert [e["prompt"] for e in record["events"] if e["type"] == "prompt"][:1] == ["welcome"], name
    paths = {name: r["recordings"][0]["path"] for name, r in records.items()}
    assert sizes[Path(paths["full"]).name] == 0 and 0 < sizes[Path(paths["fills"]).name] < 200_000, sizes
    # nothing half-written indexed: each problem named with a clear reason
    reasons = {p.path: p.reason for p in report.errors}
    assert reasons == {
        paths["full"]: "an empty file: its recorder wrote nothing (was the disk full?)",
        paths["fills"]: reasons.get(paths["fills"], "missing")}, reasons
    assert reasons[paths["fills"]].startswith("cut short: it holds ") and "was the disk full?" in reasons[paths["fills"]]
    assert report.indexed == []
    # once space is back, the next call's recording is whole and indexed; the two stay out
    assert _indexed_paths(config) == {paths["room"]}, after.summary()
    assert {p.path for p in after.errors} == {paths["full"], paths["fills"]}
    warned = [r.getMessage() for r in caplog.records if r.name == "ivr.web.housekeeping" and r.levelno == logging.WARNING]
    assert sorted(warned) == sorted(f"recordings index: {p}: {reasons[p]}" for p in (paths["full"], paths["fills"])), warned


def _indexed_paths(config) -> set[str]:
    import sqlalchemy as sa

    from ivr.store.db import create_db_engine
    from ivr.store.models import Recording

    engine = create_db_engine(config.raw["database"], root=config.root)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(Recording.path).where(Recording.indexed_at.is_not(None))).scalars())
    finally:
        engine.dispose()
