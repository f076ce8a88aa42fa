"""`ivr recordings index` and `ivr recordings purge` through click's CliRunner: output and
exit codes (0 clean, 1 when a file could not be read or deleted, 2 without config.yaml)."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from click.testing import CliRunner

from ivr.cli import cli

from .support import UTC, add_call, make_installation, recordings, write_wav


@pytest.fixture(autouse=True)
def _no_config_from_outside(monkeypatch, tmp_path):
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def ivr(config, *args):
    return CliRunner().invoke(cli, ["--config", config.path, *args], catch_exceptions=False)


def test_index_lists_orphans_and_calls_without_a_file(config, engine):
    add_call(engine, "u.1", uniqueid="u.1")
    add_call(engine, "lost", started_at=dt.datetime(2026, 11, 24, 9, 30, tzinfo=UTC))
    write_wav(config.recordings_dir / "2026-11-24" / "u.1.wav")
    write_wav(config.recordings_dir / "2026-11-24" / "stray.wav")
    result = ivr(config, "recordings", "index")
    assert result.exit_code == 0, result.output
    assert "orphan files (no call found):\n  2026-11-24/stray.wav\n" in result.stdout
    assert "calls without a file (newest first):\n  lost  2026-11-24 09:30:00 UTC  live\n" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "2 recording(s): 2 indexed, 0 unchanged, 0 still being written, 1 orphan(s), "
        "1 call(s) without a file, 0 missing, 0 error(s)")
    again = ivr(config, "recordings", "index")
    assert again.exit_code == 0
    assert "0 indexed, 2 unchanged" in again.stdout.splitlines()[-1]


def test_index_exits_1_on_a_corrupt_file_and_indexes_the_rest(config, engine):
    bad = config.recordings_dir / "2026-11-24" / "bad.wav"
    write_wav(config.recordings_dir / "2026-11-24" / "good.wav")
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    os.utime(bad, (0, 0))
    result = ivr(config, "recordings", "index")
    assert result.exit_code == 1
    assert "2026-11-24/bad.wav: not a WAV file: " in result.stderr
    assert "1 indexed" in result.stdout and "1 error(s)" in result.stdout
    assert set(recordings(engine)) == {"2026-11-24/good.wav"}


def test_index_verbose_lists_files_still_being_written(config, engine):
    write_wav(config.recordings_dir / "d" / "new.wav", age=0)
    result = ivr(config, "recordings", "index", "-v")
    assert result.exit_code == 0
    assert "still being written (left for the next run):\n  d/new.wav: modified 0 s ago" in result.stdout


def test_purge_dry_run_then_for_real(config, engine):
    add_call(engine, "old", uniqueid="old", started_at=dt.datetime.now(UTC) - dt.timedelta(days=120))
    path = write_wav(config.recordings_dir / "2026-07-01" / "old.wav")
    assert ivr(config, "recordings", "index").exit_code == 0
    dry = ivr(config, "recordings", "purge", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "to delete:\n  2026-07-01/old.wav\n" in dry.stdout
    assert dry.stdout.splitlines()[-1].startswith("would delete 1 recording(s) from before ")
    assert path.exists()
    real = ivr(config, "recordings", "purge")
    assert real.exit_code == 0
    assert real.stdout.splitlines()[-1].startswith("deleted 1 recording(s)")
    assert not path.exists()


def test_purge_exits_1_when_a_file_cannot_be_deleted(config, engine):
    add_call(engine, "old", uniqueid="old", started_at=dt.datetime.now(UTC) - dt.timedelta(days=120))
    path = write_wav(config.recordings_dir / "2026-07-01" / "old.wav")
    assert ivr(config, "recordings", "index").exit_code == 0
    path.unlink()
    path.mkdir()
    result = ivr(config, "recordings", "purge")
    assert result.exit_code == 1
    assert "2026-07-01/old.wav: cannot delete it: " in result.stderr


def test_purge_without_retention_says_so(tmp_path):
    (tmp_path / "keep").mkdir()
    config = make_installation(tmp_path / "keep", retention_days=None)
    result = ivr(config, "recordings", "purge")
    assert result.exit_code == 0
    assert "recordings are kept for ever; nothing purged" in result.stdout


def test_no_config_is_a_usage_error():
    result = CliRunner().invoke(cli, ["recordings", "index"])
    assert result.exit_code == 2
    assert "no config.yaml found" in result.stderr
