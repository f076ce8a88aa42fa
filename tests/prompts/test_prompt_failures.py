"""What a failed rendering leaves behind: an error at the prompt's line in its flow file
that says what is wrong (an unknown voice, a text with nothing to speak, a full disk), the
previous good file in place byte for byte, and no temporary file anywhere.

A full disk is simulated two ways: shutil.copyfile raising ENOSPC (the copy into place),
and a temporary file that is a link to /dev/full, which makes sox meet a real "No space
left on device" (it then still exits 0, and must not be believed)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile

import pytest
from click.testing import CliRunner

from ivr.cli import cli
from ivr.errors import PromptError
from ivr.prompts import audio
from prompt_helpers import flow_text, leftovers, line_of, tone_file
from prompt_helpers import install, tools  # noqa: F401 (fixtures)

PROMPTS = {
    "welcome": {"pl": "Dzień dobry.", "en": "Good morning."},
    "menu": {"pl": "Wciśnij jeden.", "en": "Press one."},
}


def _changed(prompts, name="welcome", language="pl", text="Dzień dobry, witamy."):
    return {**prompts, name: {**prompts[name], language: text}}


def test_an_unknown_voice_is_an_error_at_the_prompts_line(install):
    text = flow_text(PROMPTS)
    install.build(install.flow(text))
    before = {p: p.read_bytes() for p in install.outputs()}

    install.voices["pl"] = "xx-nope"
    result = install.build(install.flow(text))
    assert result.rendered == 0 and result.up_to_date == 2  # the English prompts are unaffected
    assert len(result.errors) == 2
    for diagnostic, name in zip(sorted(result.errors, key=lambda d: d.location.line), ["welcome", "menu"]):
        assert diagnostic.location.file == "flows/demo.yaml"
        assert diagnostic.location.line == line_of(text, name)
        assert f'prompt "{name}" (pl)' in diagnostic.message
        assert '"xx-nope"' in diagnostic.message and "voice" in diagnostic.message
        assert "previous file was kept" in diagnostic.message
    assert {p: p.read_bytes() for p in install.outputs()} == before
    assert leftovers(install.prompts) == []


def test_the_build_command_shows_the_bad_voice_at_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "config.yaml").write_text("prompts: {voices: {pl: xx-nope, en: en-gb}}\n", encoding="utf-8")
    text = flow_text(PROMPTS)
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "demo.yaml").write_text(text, encoding="utf-8")
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["prompts", "build"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    errors = sorted(line for line in result.stderr.splitlines() if "xx-nope" in line)
    assert len(errors) == 2, result.stderr
    for name in ("welcome", "menu"):
        prefix = f'flows/demo.yaml:{line_of(text, name)}:3: prompt "{name}" (pl): '
        assert any(line.startswith(prefix) for line in errors), (prefix, errors)
    assert all('espeak-ng has no voice "xx-nope" for language pl' in line for line in errors)
    assert "2 rendered" in result.stdout and "2 failed" in result.stdout
    assert sorted(p.name for p in (tmp_path / "prompts" / "en" / "demo").iterdir()) == ["menu.wav", "welcome.wav"]
    assert not (tmp_path / "prompts" / "pl").exists()
    assert leftovers(tmp_path / "prompts") == []


@pytest.mark.parametrize("words", ["...", "?!", ",;"])
def test_a_text_with_nothing_to_speak_is_an_error(install, words):
    text = flow_text({**PROMPTS, "dots": {"pl": words, "en": "Fine."}})
    result = install.build(install.flow(text))
    assert [d.location.line for d in result.errors] == [line_of(text, "dots")]
    assert "spoke nothing" in result.errors[0].message
    assert result.rendered == 5
    assert not install.out("demo", "dots", "pl").exists()
    assert install.out("demo", "dots", "en").is_file()
    assert leftovers(install.prompts) == []


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_keeps_the_previous_file(install, monkeypatch):
    install.build(install.flow(flow_text(PROMPTS)))
    good = install.out("demo", "welcome", "pl").read_bytes()

    text = flow_text(_changed(PROMPTS))
    monkeypatch.setattr("ivr.prompts.audio.shutil.copyfile", _disk_full)
    result = install.build(install.flow(text))
    assert [(d.location.file, d.location.line) for d in result.errors] == [("flows/demo.yaml", line_of(text, "welcome"))]
    message = result.errors[0].message
    assert "disk is full" in message and "previous file was kept" in message
    assert install.out("demo", "welcome", "pl").read_bytes() == good
    assert leftovers(install.prompts) == []

    monkeypatch.undo()  # space again: the prompt is built, from scratch
    again = install.build(install.flow(text))
    assert again.errors == [] and again.rendered == 1
    assert install.out("demo", "welcome", "pl").read_bytes() != good


def test_a_full_disk_while_copying_into_place_keeps_the_rendering_in_the_cache(install, monkeypatch):
    install.build(install.flow(flow_text(PROMPTS)))
    target = install.out("demo", "welcome", "pl")
    good = target.read_bytes()
    real_copy = shutil.copyfile

    def full_outside_the_cache(src, dst, *args, **kwargs):
        if ".cache" not in str(dst):
            _disk_full()
        return real_copy(src, dst, *args, **kwargs)

    text = flow_text(_changed(PROMPTS))
    monkeypatch.setattr("ivr.prompts.audio.shutil.copyfile", full_outside_the_cache)
    result = install.build(install.flow(text))
    assert len(result.errors) == 1 and "disk is full" in result.errors[0].message
    assert target.read_bytes() == good
    assert leftovers(install.prompts) == []

    monkeypatch.undo()
    again = install.build(install.flow(text))
    assert (again.rendered, again.reused, again.up_to_date) == (0, 1, 3)  # rendered once, before the failure
    assert target.read_bytes() != good


@pytest.fixture
def sox_output_on_a_full_disk(monkeypatch):
    """The temporary file sox converts into is a link to /dev/full: every write fails with
    ENOSPC, as on a full disk (sox reports it and still exits 0)."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return fd, name

    monkeypatch.setattr("ivr.prompts.audio.tempfile.mkstemp", mkstemp)


def test_sox_on_a_full_disk_is_a_full_disk(tmp_path, sox_output_on_a_full_disk):
    source = tone_file(tmp_path / "in.wav", 1.0)
    dest = tmp_path / "out" / "prompt.wav"
    dest.parent.mkdir()
    dest.write_bytes(b"the previous good file")
    with pytest.raises(OSError) as caught:
        audio.convert(source, dest)
    assert caught.value.errno == errno.ENOSPC
    assert dest.read_bytes() == b"the previous good file"
    assert list(dest.parent.iterdir()) == [dest]


def test_a_recording_converted_on_a_full_disk_keeps_the_previous_file(install, monkeypatch):
    recording = tone_file(install.root / "media" / "hello.wav", 1.0)
    text = flow_text({"welcome": {"file": "media/hello.wav"}})
    install.build(install.flow(text))
    built = install.out("demo", "welcome", "pl")
    good = built.read_bytes()

    tone_file(recording, 2.0, freq=660)  # a new recording, while the disk is full
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        if ".cache" in name:  # the conversion into the cache
            os.unlink(name)
            os.symlink("/dev/full", name)
        return fd, name

    monkeypatch.setattr("ivr.prompts.audio.tempfile.mkstemp", mkstemp)
    result = install.build(install.flow(text))
    assert len(result.errors) == 2  # pl and en share the recording: one failure each
    assert all("disk is full" in d.message and d.location.line == line_of(text, "welcome") for d in result.errors)
    assert built.read_bytes() == good
    assert leftovers(install.prompts) == []
    monkeypatch.undo()
    again = install.build(install.flow(text))
    assert again.errors == [] and again.rendered == 1
    assert audio.inspect(built).duration == pytest.approx(2.0, abs=0.01)


def test_a_manifest_that_cannot_be_written_is_a_clear_error(install):
    flow = install.flow(flow_text(PROMPTS))
    install.prompts.mkdir(parents=True)
    (install.prompts / ".manifest.tmp").symlink_to("/dev/full")  # its write meets a full disk
    with pytest.raises(PromptError, match="disk is full"):
        install.build(flow)
    assert leftovers(install.prompts) == []
    result = install.build(flow)  # the outputs are there; the next build only records them
    assert result.errors == [] and result.rendered == 0 and result.reused == 4


def test_a_bad_recording_does_not_stop_the_others(install):
    (install.root / "media").mkdir()
    (install.root / "media" / "noise.wav").write_bytes(os.urandom(4000))
    text = flow_text({**PROMPTS, "broken": {"file": "media/noise.wav"}})
    result = install.build(install.flow(text))
    assert result.rendered == 4
    assert {d.location.line for d in result.errors} == {line_of(text, "broken")}
    assert all("cannot convert noise.wav" in d.message for d in result.errors)
    assert not install.out("demo", "broken", "pl").exists()
    assert leftovers(install.prompts) == []
