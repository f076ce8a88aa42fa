"""purge_recordings: only recordings past retention go, never those of held calls; rows
stay with deleted_at, each deletion is audited; a dry run changes nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.recordings.index import index_recordings
from ivr.recordings.purge import purge_recordings
from ivr.store.models import AuditEntry, Hold, Recording

from .support import UTC, add_call, make_installation, recordings, write_wav

NOW = dt.datetime.now(UTC)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def old_and_new(config, engine) -> dict[str, str]:
    """Calls of 100 days ago (one held), of 10 days ago, and an old orphan; all indexed."""
    root = config.recordings_dir
    layout = {"old": ("2026-08-01", 100), "held": ("2026-08-01", 100), "new": ("2026-11-14", 10)}
    paths = {}
    for call_id, (day, age) in layout.items():
        add_call(engine, call_id, uniqueid=call_id, started_at=days_ago(age))
        paths[call_id] = f"{day}/{call_id}.wav"
        write_wav(root / paths[call_id], 0.5)
    paths["orphan"] = "2026-08-02/orphan.wav"
    write_wav(root / paths["orphan"], 0.5)
    with Session(engine) as session:
        session.add(Hold(call_id="held", reason="complaint", placed_by="qa", placed_at=days_ago(1)))
        session.commit()
    assert len(index_recordings(config, engine=engine).indexed) == 4
    with Session(engine) as session:  # the orphan's age is its own time: make it old
        session.get(Recording, recordings(engine)[paths["orphan"]].id).created_at = days_ago(95)
        session.commit()
    return paths


def audit(engine) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_old_recordings_go_held_and_new_ones_stay(config, engine):
    paths = old_and_new(config, engine)
    root = config.recordings_dir
    report = purge_recordings(config, dry_run=False, now=NOW, engine=engine)
    assert report.ok and report.retention_days == 90
    assert report.cutoff == NOW - dt.timedelta(days=90)
    assert [p.path for p in report.deleted] == [paths["old"], paths["orphan"]]
    assert [p.path for p in report.held] == [paths["held"]]
    assert report.bytes == sum(p.size for p in report.deleted) > 0
    assert not (root / paths["old"]).exists() and not (root / paths["orphan"]).exists()
    assert (root / paths["held"]).exists() and (root / paths["new"]).exists()
    assert not (root / "2026-08-02").exists()  # the folder it emptied
    rows = recordings(engine)
    assert len(rows) == 4  # rows stay for the audit
    assert rows[paths["old"]].deleted_at == NOW and rows[paths["orphan"]].deleted_at == NOW
    assert rows[paths["held"]].deleted_at is None and rows[paths["new"]].deleted_at is None
    entries = audit(engine)
    assert [(e.user, e.action, e.call_id, e.recording_id, e.detail) for e in entries] == [
        (None, "purge", "old", rows[paths["old"]].id, paths["old"]),
        (None, "purge", None, rows[paths["orphan"]].id, paths["orphan"])]
    assert all(e.at == NOW for e in entries)
    again = purge_recordings(config, dry_run=False, now=NOW, engine=engine)
    assert again.deleted == [] and len(audit(engine)) == 2
    # purged files are not "missing", nor are their calls "without a file"
    after = index_recordings(config, engine=engine)
    assert after.missing == [] and after.calls_without_file_count == 0


def test_a_dry_run_changes_nothing(config, engine):
    paths = old_and_new(config, engine)
    before = {p: r.deleted_at for p, r in recordings(engine).items()}
    report = purge_recordings(config, dry_run=True, now=NOW, engine=engine)
    assert report.dry_run and [p.path for p in report.deleted] == [paths["old"], paths["orphan"]]
    assert all((config.recordings_dir / p).exists() for p in paths.values())
    assert {p: r.deleted_at for p, r in recordings(engine).items()} == before
    assert audit(engine) == []


def test_no_retention_purges_nothing(tmp_path):
    config = make_installation(tmp_path, retention_days=None)
    write_wav(config.recordings_dir / "2020-01-01" / "x.wav")
    report = purge_recordings(config, dry_run=False)
    assert report.retention_days is None and report.cutoff is None and report.deleted == []
    assert (config.recordings_dir / "2020-01-01" / "x.wav").exists()


def test_a_file_that_cannot_be_deleted_is_an_error_and_the_others_go(config, engine):
    paths = old_and_new(config, engine)
    root = config.recordings_dir
    (root / paths["old"]).unlink()
    (root / paths["old"]).mkdir()  # unlink() refuses a folder: EISDIR, as a real failure would
    with Session(engine) as session:
        session.add(Recording(path="../outside.wav", created_at=days_ago(200)))
        session.commit()
    (root.parent / "outside.wav").write_bytes(b"keep me")
    report = purge_recordings(config, dry_run=False, now=NOW, engine=engine)
    assert not report.ok
    reasons = {p.path: p.reason for p in report.errors}
    assert reasons[paths["old"]].startswith("cannot delete it: Is a directory")
    assert reasons["../outside.wav"].startswith("not deleted:")
    assert [p.path for p in report.deleted] == [paths["orphan"]]
    assert (root.parent / "outside.wav").read_bytes() == b"keep me"
    rows = recordings(engine)
    assert rows[paths["old"]].deleted_at is None and rows[paths["orphan"]].deleted_at is not None
    assert [e.detail for e in audit(engine)] == [paths["orphan"]]


def test_a_file_already_gone_is_marked(config, engine):
    paths = old_and_new(config, engine)
    (config.recordings_dir / paths["old"]).unlink()
    report = purge_recordings(config, dry_run=False, now=NOW, engine=engine)
    assert report.ok and report.already_gone == 1 and len(report.deleted) == 2
    assert recordings(engine)[paths["old"]].deleted_at == NOW


def test_a_folder_linked_to_elsewhere_is_never_followed(config, engine, tmp_path):
    paths = old_and_new(config, engine)
    root = config.recordings_dir
    # the day folder of the old call becomes a link out of the recordings folder after indexing
    elsewhere = tmp_path / "elsewhere"
    (root / "2026-08-01").rename(elsewhere)
    (root / "2026-08-01").symlink_to(elsewhere, target_is_directory=True)
    report = purge_recordings(config, dry_run=False, now=NOW, engine=engine)
    assert (elsewhere / "old.wav").exists()
    assert {p.path: p.reason for p in report.errors}[paths["old"]].startswith("not deleted:")
    assert [p.path for p in report.deleted] == [paths["orphan"]]
    assert recordings(engine)[paths["old"]].deleted_at is None
