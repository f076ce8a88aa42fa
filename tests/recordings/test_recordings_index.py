"""index_recordings on real WAV files and a real SQLite database: links, facts, idempotence,
files still being written, orphans, calls without a file, missing and corrupt files."""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import io
import os
import shutil

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ivr.errors import RecordingError
from ivr.recordings import index as index_module
from ivr.recordings.index import index_recordings
from ivr.store.models import Call, Recording

from .support import UTC, add_call, lie_about_size, recordings, set_age, write_wav


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def run(config, engine, **kwargs):
    return index_recordings(config, engine=engine, **kwargs)


def test_live_and_simulated_files_are_linked_with_their_facts(config, engine):
    root = config.recordings_dir
    add_call(engine, "1700000000.1", uniqueid="1700000000.1")
    add_call(engine, "c-2", uniqueid="1700000000.2")  # a call id that is not the uniqueid
    add_call(engine, "sim-3", source="simulated")
    live = write_wav(root / "2026-11-24" / "1700000000.1.wav", 2.0, amplitude=0.5)
    write_wav(root / "2026-11-24" / "1700000000.2.wav", 1.0)
    write_wav(root / "simulated" / "2026-11-24" / "sim-3.wav", 1.0)
    write_wav(root / "voicemail" / "general" / "1700000000.2.wav", 0.5)
    report = run(config, engine)
    assert report.ok and not report.pending and not report.orphans
    assert sorted(report.indexed) == ["2026-11-24/1700000000.1.wav", "2026-11-24/1700000000.2.wav",
                                      "simulated/2026-11-24/sim-3.wav", "voicemail/general/1700000000.2.wav"]
    rows = recordings(engine)
    assert {p: r.call_id for p, r in rows.items()} == {
        "2026-11-24/1700000000.1.wav": "1700000000.1", "2026-11-24/1700000000.2.wav": "c-2",
        "simulated/2026-11-24/sim-3.wav": "sim-3", "voicemail/general/1700000000.2.wav": "c-2"}
    row = rows["2026-11-24/1700000000.1.wav"]
    data = live.read_bytes()
    assert row.size == len(data) == os.path.getsize(live)
    assert row.checksum == hashlib.sha256(data).hexdigest()
    assert row.duration == 2.0
    assert len(row.peaks) == 200 and min(row.peaks) >= 0.49 and max(row.peaks) <= 0.5
    assert row.created_at == dt.datetime.fromtimestamp(live.stat().st_mtime_ns // 1000 / 1e6, UTC)
    assert row.indexed_at is not None and abs((row.indexed_at - now()).total_seconds()) < 60
    assert row.deleted_at is None
    assert report.bytes_read == sum(r.size for r in rows.values())


def test_a_simulated_file_is_linked_by_call_id_only(config, engine):
    add_call(engine, "live-1", uniqueid="9.9")
    write_wav(config.recordings_dir / "simulated" / "2026-11-24" / "9.9.wav")
    report = run(config, engine)
    assert report.orphans == ["simulated/2026-11-24/9.9.wav"]
    assert recordings(engine)["simulated/2026-11-24/9.9.wav"].call_id is None


def test_the_row_the_runtime_made_is_completed_not_duplicated(config, engine):
    add_call(engine, "1700000000.5", uniqueid="1700000000.5")
    write_wav(config.recordings_dir / "2026-11-24" / "1700000000.5.wav")
    with Session(engine) as session:  # what CallWriter.link_recording leaves: no facts yet
        session.add(Recording(path="2026-11-24/1700000000.5.wav", uniqueid="1700000000.5", call_id="1700000000.5",
                              created_at=now() - dt.timedelta(minutes=5)))
        session.commit()
        before = session.scalar(select(Recording.id))
    report = run(config, engine)
    assert report.indexed == ["2026-11-24/1700000000.5.wav"]
    rows = recordings(engine)
    assert len(rows) == 1
    row = rows["2026-11-24/1700000000.5.wav"]
    assert row.id == before and row.call_id == "1700000000.5" and row.size and row.peaks


def test_a_second_run_reads_nothing(config, engine, monkeypatch):
    root = config.recordings_dir
    for i in range(5):
        add_call(engine, f"u.{i}", uniqueid=f"u.{i}")
        write_wav(root / "2026-11-24" / f"u.{i}.wav", 0.5 + i)
    write_wav(root / "2026-11-24" / "orphan.wav")
    first = run(config, engine)
    assert len(first.indexed) == 6 and first.ok
    stored = recordings(engine)

    opened: list[str] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def no_reading(*args, **kwargs):
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr(index_module, "read_facts", no_reading)
    monkeypatch.setattr(index_module, "read_layout", no_reading)
    second = run(config, engine, now=now() + dt.timedelta(hours=1))
    assert second.indexed == [] and second.unchanged == 6 and second.ok
    assert second.orphans == ["2026-11-24/orphan.wav"] and second.bytes_read == 0
    assert not [p for p in opened if p.endswith(".wav")]
    assert {p: (r.indexed_at, r.checksum) for p, r in recordings(engine).items()} == \
        {p: (r.indexed_at, r.checksum) for p, r in stored.items()}


def test_a_changed_file_is_indexed_again(config, engine):
    add_call(engine, "u.1", uniqueid="u.1")
    path = write_wav(config.recordings_dir / "d" / "u.1.wav", 1.0, amplitude=0.2)
    run(config, engine)
    write_wav(path, 3.0, amplitude=0.8, age=60)
    report = run(config, engine)
    assert report.indexed == ["d/u.1.wav"] and report.unchanged == 0
    row = recordings(engine)["d/u.1.wav"]
    assert row.duration == 3.0 and max(row.peaks) >= 0.79
    assert row.checksum == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_fresh_file_waits_for_the_next_run(config, engine):
    add_call(engine, "u.1", uniqueid="u.1")
    write_wav(config.recordings_dir / "d" / "u.1.wav", age=2)
    report = run(config, engine, settle_seconds=10)
    assert report.indexed == [] and [p.path for p in report.pending] == ["d/u.1.wav"]
    assert "s ago" in report.pending[0].reason
    assert report.calls_without_file_count == 0  # its file is there, only not finished
    assert recordings(engine) == {}
    later = run(config, engine, settle_seconds=10, now=now() + dt.timedelta(seconds=30))
    assert later.indexed == ["d/u.1.wav"] and not later.pending


def test_a_header_that_lies_about_its_size_waits(config, engine):
    add_call(engine, "u.1", uniqueid="u.1")
    path = write_wav(config.recordings_dir / "d" / "u.1.wav", 2.0)
    good = path.read_bytes()
    lie_about_size(path)
    report = run(config, engine)
    assert report.indexed == [] and report.ok
    assert [(p.path, p.reason) for p in report.pending] == [
        ("d/u.1.wav", "its WAV header is not final yet (still being recorded)")]
    path.write_bytes(good)  # MixMonitor closes the file: the sizes are written
    set_age(path, 60)
    later = run(config, engine)
    assert later.indexed == ["d/u.1.wav"] and recordings(engine)["d/u.1.wav"].duration == 2.0


def test_a_header_never_finished_is_an_error_after_a_while(config, engine):
    add_call(engine, "u.1", uniqueid="u.1")
    path = write_wav(config.recordings_dir / "d" / "u.1.wav", age=3 * 3600)
    lie_about_size(path)
    report = run(config, engine)
    assert not report.ok and report.errors[0].path == "d/u.1.wav"
    assert "never finished" in report.errors[0].reason and "0 bytes of audio" in report.errors[0].reason


def test_the_file_of_a_running_call_waits(config, engine):
    add_call(engine, "u.1", uniqueid="u.1", outcome=None)
    write_wav(config.recordings_dir / "d" / "u.1.wav")
    report = run(config, engine)
    assert [(p.path, p.reason) for p in report.pending] == [("d/u.1.wav", "its call is still running")]
    with Session(engine) as session:
        session.execute(update(Call).where(Call.id == "u.1").values(outcome="answered"))
        session.commit()
    assert run(config, engine).indexed == ["d/u.1.wav"]


def test_orphans_and_calls_without_a_file(config, engine):
    root = config.recordings_dir
    write_wav(root / "2026-11-24" / "nobody.wav")
    add_call(engine, "with-file", uniqueid="with-file")
    write_wav(root / "2026-11-24" / "with-file.wav")
    add_call(engine, "running", outcome=None)  # no file yet, but not ended: not listed
    base = now() - dt.timedelta(days=1)
    for i in range(60):
        add_call(engine, f"lost-{i:02d}", started_at=base + dt.timedelta(minutes=i))
    report = run(config, engine)
    assert report.orphans == ["2026-11-24/nobody.wav"]
    assert report.calls_without_file_count == 60
    assert [c.call_id for c in report.calls_without_file] == [f"lost-{i:02d}" for i in range(59, 9, -1)]
    assert recordings(engine)["2026-11-24/nobody.wav"].uniqueid == "nobody"  # the writer links it by that


def test_an_orphan_is_linked_when_its_call_comes(config, engine, monkeypatch):
    write_wav(config.recordings_dir / "d" / "late.1.wav")
    assert run(config, engine).orphans == ["d/late.1.wav"]
    add_call(engine, "late.1", uniqueid="late.1")
    monkeypatch.setattr(index_module, "read_facts", lambda *a, **k: pytest.fail("read again"))
    report = run(config, engine)
    assert report.linked == 1 and report.unchanged == 1 and not report.orphans
    assert recordings(engine)["d/late.1.wav"].call_id == "late.1"


def test_corrupt_files_are_reported_and_the_rest_indexed(config, engine):
    root = config.recordings_dir
    (root / "d").mkdir()
    (root / "d" / "noise.wav").write_bytes(os.urandom(5000))
    (root / "d" / "empty.wav").write_bytes(b"")
    float_wav = write_wav(root / "d" / "float.wav")
    data = bytearray(float_wav.read_bytes())
    data[20:22] = (3).to_bytes(2, "little")  # IEEE float: no format the wave module reads
    float_wav.write_bytes(bytes(data))
    for name in ("noise.wav", "empty.wav", "float.wav"):
        set_age(root / "d" / name, 120)
    write_wav(root / "d" / "fine.wav")
    report = run(config, engine)
    assert report.indexed == ["d/fine.wav"]
    reasons = {p.path: p.reason for p in report.errors}
    assert set(reasons) == {"d/noise.wav", "d/empty.wav", "d/float.wav"}
    assert reasons["d/noise.wav"] == "not a WAV file: no RIFF/WAVE header"
    assert reasons["d/empty.wav"] == "an empty file: its recorder wrote nothing (was the disk full?)"
    assert reasons["d/float.wav"].startswith("not a readable WAV file: unknown format: 3")
    assert set(recordings(engine)) == {"d/fine.wav"}


def test_hidden_and_temporary_files_are_ignored(config, engine):
    root = config.recordings_dir
    for name in (".x.wav", "a.wav.part", "b.wav.tmp", "c.tmp", "notes.txt", ".hidden/d.wav"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not audio")
    write_wav(root / "deep" / "er" / "still" / "x.WAV")
    report = run(config, engine)
    assert report.files == 1 and report.indexed == ["deep/er/still/x.WAV"] and report.ok


def test_missing_files_are_reported_unless_purged(config, engine):
    add_call(engine, "a", uniqueid="a")
    add_call(engine, "b", uniqueid="b")
    write_wav(config.recordings_dir / "d" / "a.wav")
    write_wav(config.recordings_dir / "d" / "b.wav")
    run(config, engine)
    (config.recordings_dir / "d" / "a.wav").unlink()
    (config.recordings_dir / "d" / "b.wav").unlink()
    with Session(engine) as session:
        session.execute(update(Recording).where(Recording.path == "d/b.wav").values(deleted_at=now()))
        session.commit()
    report = run(config, engine)
    assert report.missing == ["d/a.wav"] and report.calls_without_file_count == 0
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Recording)) == 2


def test_progress_counts_every_file(config, engine):
    for i in range(3):
        write_wav(config.recordings_dir / f"{i}.wav", 0.1)
    seen = []
    run(config, engine, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_no_folder_yet_and_a_file_instead_of_a_folder(config, engine):
    shutil.rmtree(config.recordings_dir)
    report = run(config, engine)
    assert not report.folder_exists and report.files == 0 and report.ok
    config.recordings_dir.write_text("oops")
    with pytest.raises(RecordingError, match="not a folder"):
        run(config, engine)


def test_a_name_that_is_not_utf8_is_reported(config, engine):
    write_wav(config.recordings_dir / "d" / "fine.wav")
    with open(os.fsencode(config.recordings_dir / "d") + b"/bad\xff.wav", "wb") as f:
        f.write(b"whatever")
    report = run(config, engine)
    assert report.indexed == ["d/fine.wav"]
    assert [str(p) for p in report.errors] == ["d/bad\ufffd.wav: its name is not UTF-8 text; rename it"]


def _ended(engine, call_id: str, duration: float, pauses: tuple[tuple[float, float], ...] = ()) -> None:
    """The call ended after `duration` s; its recording paused for sensitive keys over `pauses`."""
    from ivr.store.models import CallEvent

    with Session(engine) as session:
        session.execute(update(Call).where(Call.id == call_id).values(duration=duration))
        seq = 0
        for start, end in pauses:
            for at, state in ((start, "paused"), (end, "resumed")):
                session.add(CallEvent(call_id=call_id, seq=seq, t=at, type="recording", flow="main", node="account",
                                      data={"state": state}))
                seq += 1
        session.commit()


def test_a_recording_cut_short_is_reported_not_indexed(config, engine):
    """MixMonitor on a disk that filled up closes a well-formed WAV that holds only the start
    of the call: QA must not take it for the whole call."""
    add_call(engine, "u.1", uniqueid="u.1")
    _ended(engine, "u.1", 48.0)
    write_wav(config.recordings_dir / "d" / "u.1.wav", 7.0)
    add_call(engine, "u.2", uniqueid="u.2")  # whole: a second or two short of the call is normal
    _ended(engine, "u.2", 12.0)
    write_wav(config.recordings_dir / "d" / "u.2.wav", 10.5)
    add_call(engine, "u.3", uniqueid="u.3")  # the recorder stopped for 30 s of card digits (no AMI)
    _ended(engine, "u.3", 40.0, pauses=((5.0, 35.0),))
    write_wav(config.recordings_dir / "d" / "u.3.wav", 9.5)
    write_wav(config.recordings_dir / "voicemail" / "general" / "u.1.wav", 4.0)  # a message: part of its call
    report = run(config, engine)
    assert sorted(report.indexed) == ["d/u.2.wav", "d/u.3.wav", "voicemail/general/u.1.wav"]
    [problem] = report.errors
    assert problem.path == "d/u.1.wav"
    assert problem.reason == ("cut short: it holds 7.0 s of a 48.0 s call (its recorder stopped early: "
                              "was the disk full?); not indexed")
    assert recordings(engine).get("d/u.1.wav") is None or recordings(engine)["d/u.1.wav"].indexed_at is None
