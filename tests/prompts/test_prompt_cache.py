"""The prompt cache: a rebuild of unchanged flows renders nothing and touches no file; a
changed text renders that prompt only; the same words in the same voice are rendered once
wherever they appear; --force renders everything again. Also through `ivr prompts build`
on a copy of the example installation."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from ivr.cli import cli
from prompt_helpers import flow_text
from prompt_helpers import install, tools  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]

PROMPTS = {
    "welcome": {"pl": "Dzień dobry.", "en": "Good morning."},
    "menu": {"pl": "Wciśnij jeden.", "en": "Press one."},
    "bye": {"pl": "Do widzenia.", "en": "Goodbye."},
}


def _stamps(folder: Path) -> dict[Path, int]:
    """mtime_ns of every file under a folder (outputs, cache and manifest)."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_second_build_renders_nothing_and_touches_nothing(install):
    flow = install.flow(flow_text(PROMPTS))
    first = install.build(flow)
    assert first.errors == []
    assert (first.rendered, first.reused, first.up_to_date) == (6, 0, 0)
    before = _stamps(install.prompts)
    assert len([p for p in before if p.suffix == ".wav"]) == 12  # 6 outputs + 6 in the cache

    second = install.build(flow)
    assert second.errors == []
    assert (second.rendered, second.reused, second.up_to_date) == (0, 0, 6)
    assert _stamps(install.prompts) == before


def test_a_changed_text_renders_that_prompt_only(install):
    install.build(install.flow(flow_text(PROMPTS)))
    before = _stamps(install.prompts)
    old = install.out("demo", "menu", "pl").read_bytes()

    changed = {**PROMPTS, "menu": {"pl": "Wciśnij dwa.", "en": "Press one."}}
    result = install.build(install.flow(flow_text(changed)))
    assert result.errors == []
    assert (result.rendered, result.reused, result.up_to_date) == (1, 0, 5)
    assert install.out("demo", "menu", "pl").read_bytes() != old
    after = _stamps(install.prompts)
    untouched = [p for p in before if p != install.out("demo", "menu", "pl") and p.name != ".manifest.json"]
    assert all(after[p] == before[p] for p in untouched)

    # back to the old words: the cache still holds them, nothing is rendered
    back = install.build(install.flow(flow_text(PROMPTS)))
    assert (back.rendered, back.reused, back.up_to_date) == (0, 1, 5)
    assert install.out("demo", "menu", "pl").read_bytes() == old


def test_a_deleted_output_comes_back_from_the_cache(install):
    flow = install.flow(flow_text(PROMPTS))
    install.build(flow)
    install.out("demo", "bye", "en").unlink()
    result = install.build(flow)
    assert (result.rendered, result.reused, result.up_to_date) == (0, 1, 5)
    assert install.out("demo", "bye", "en").is_file()


def test_the_same_words_in_the_same_voice_render_once(install):
    same = {"pl": "Dziękujemy.", "en": "Thank you."}
    one = install.flow(flow_text({"thanks": same, "thanks_again": same, "other": {"pl": "Inny.", "en": "Other."}}, flow="one"))
    two = install.flow(flow_text({"thanks": same}, flow="two"))
    result = install.build(one, two)
    assert result.errors == []
    # 8 outputs; "thanks" in pl and en rendered once each, reused 4 times; "other" twice
    assert (result.rendered, result.reused, result.up_to_date) == (4, 4, 0)
    for lang in ("pl", "en"):
        copies = {install.out(f, p, lang).read_bytes() for f, p in (("one", "thanks"), ("one", "thanks_again"), ("two", "thanks"))}
        assert len(copies) == 1


def test_the_same_words_in_another_voice_render_again(install):
    flow = install.flow(flow_text(PROMPTS))
    install.build(flow)
    install.voices["en"] = "en-us"
    result = install.build(flow)
    assert result.errors == []
    assert (result.rendered, result.reused, result.up_to_date) == (3, 0, 3)


def test_force_renders_everything_again(install):
    same = {"pl": "Dziękujemy.", "en": "Thank you."}
    flow = install.flow(flow_text({**PROMPTS, "thanks": same, "thanks_again": same}))
    install.build(flow)
    before = {p: p.stat().st_ino for p in install.outputs()}
    result = install.build(flow, force=True)
    assert result.errors == []
    assert (result.rendered, result.reused, result.up_to_date) == (8, 2, 0)
    # every output was replaced by a new file (atomically: a new inode, never rewritten in place)
    assert all(p.stat().st_ino != ino for p, ino in before.items())
    again = install.build(flow)
    assert (again.rendered, again.reused, again.up_to_date) == (0, 0, 10)


def _example_installation(tmp_path: Path, monkeypatch) -> None:
    for name in ("config.yaml", "data", "flows"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    monkeypatch.delenv("IVR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def _summary(output: str) -> str:
    return next(line for line in output.splitlines() if "prompt file(s)" in line)


def test_the_build_command_twice_on_the_example_installation(tmp_path, monkeypatch):
    _example_installation(tmp_path, monkeypatch)
    first = CliRunner().invoke(cli, ["prompts", "build"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert " 0 failed" in _summary(first.stdout)
    outputs = sorted((tmp_path / "prompts").glob("*/*/*.wav"))
    assert outputs and all(p.stat().st_size > 1000 for p in outputs)
    count = len(outputs)
    assert f"{count} prompt file(s)" in _summary(first.stdout)

    before = _stamps(tmp_path / "prompts")
    second = CliRunner().invoke(cli, ["prompts", "build"], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "0 rendered" in _summary(second.stdout)
    assert f"0 rendered, 0 from the cache, {count} up to date, 0 failed" in _summary(second.stdout)
    assert _stamps(tmp_path / "prompts") == before

    # clean and built: `ivr prompts check` finds nothing
    check = CliRunner().invoke(cli, ["prompts", "check"], catch_exceptions=False)
    assert check.exit_code == 0, check.output
    assert check.stdout.strip() == ""

    forced = CliRunner().invoke(cli, ["prompts", "build", "--force", "-j", "2"], catch_exceptions=False)
    assert forced.exit_code == 0, forced.output
    assert "0 up to date, 0 failed" in _summary(forced.stdout)
    assert "0 rendered" not in _summary(forced.stdout)
