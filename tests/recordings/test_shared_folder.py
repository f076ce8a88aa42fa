"""Recordings of several Asterisks in one shared folder, indexed by every QA host at once
(docs/recordings.md): two indexers over one folder and one real PostgreSQL leave exactly one
row per recording, each linked to its call, whichever of them got there first; the runtime's
own link of a file (made when its call started) is completed, not doubled."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ivr.recordings.index import index_recordings
from ivr.settings.config import check_config
from ivr.store.db import create_db_engine, init_db
from ivr.store.models import Recording
from ivr.testbed.postgres import PostgresUnavailable, start_postgres

from .support import add_call, write_wav

FILES_PER_NODE = 130  # two nodes: 260 files, more than one batch of the index (200)


@pytest.fixture(scope="module")
def postgres() -> Iterator:
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


def qa_host(folder: Path, database: str, shared: Path):
    """The installation of one QA host: its own folder, the common database and recordings folder."""
    folder.mkdir()
    (folder / "config.yaml").write_text(f"database: {database}\nrecordings: {{dir: {shared}, retention_days: 90}}\n")
    config, findings = check_config(folder / "config.yaml")
    assert config is not None, [str(d) for d in findings]
    return config


def test_two_indexers_at_once_over_one_folder_leave_one_row_per_recording(tmp_path, postgres):
    database = postgres.create_database()
    try:
        shared = tmp_path / "shared-recordings"  # the NFS mount of every Asterisk and QA host
        engine = init_db(database)
        paths = []
        for node in ("ast1", "ast2"):  # uniqueids carry each Asterisk's systemname: no two files clash
            for i in range(FILES_PER_NODE):
                uniqueid = f"{node}-1733400000.{i}"
                add_call(engine, f"call-{node}-{i}", uniqueid=uniqueid)
                paths.append(write_wav(shared / "2026-12-05" / f"{uniqueid}.wav", seconds=0.2).relative_to(shared))
        with Session(engine) as s:  # the runtime linked one file when its call started, before any index
            s.add(Recording(call_id="call-ast1-0", uniqueid="ast1-1733400000.0", path="2026-12-05/ast1-1733400000.0.wav",
                            created_at=func.now()))
            s.commit()
        hosts = [qa_host(tmp_path / name, database, shared) for name in ("qa1", "qa2")]
        engines = [create_db_engine(database) for _ in hosts]
        reports: list = [None, None]
        errors: list = []
        start = threading.Barrier(2)

        def run(n: int) -> None:
            try:
                start.wait()
                reports[n] = index_recordings(hosts[n], engine=engines[n])
            except Exception as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        for _ in range(2):  # at once on new files, then at once on files indexed already
            threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert errors == []
            assert all(r.ok and r.files == len(paths) for r in reports), [r.summary() for r in reports]
        with engine.connect() as conn:
            rows = conn.execute(select(Recording.path, Recording.call_id, Recording.indexed_at, Recording.duration)).all()
            doubled = conn.execute(text("SELECT path FROM recordings GROUP BY path HAVING count(*) > 1")).all()
        assert doubled == [] and len(rows) == len(paths)
        assert {r.path for r in rows} == {p.as_posix() for p in paths}
        assert all(r.indexed_at is not None and r.duration == pytest.approx(0.2) for r in rows)
        assert {r.path: r.call_id for r in rows}["2026-12-05/ast2-1733400000.7.wav"] == "call-ast2-7"
        assert all(r.call_id is not None for r in rows)
        for e in engines + [engine]:
            e.dispose()
    finally:
        postgres.drop_database(database)
