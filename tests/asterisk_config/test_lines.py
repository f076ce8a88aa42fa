"""Several lines: config.yaml's `lines` (numbers and patterns -> flows) read with their
file:line:col, checked against the installation's flows by `ivr validate` and `ivr
asterisk-config`, and written as one extension per line of the generated dialplan. The
same dialplan carries real calls in tests/asterisk/test_live_lines.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.asterisk.dialplan import INCOMING_EXTENSIONS, extensions_conf
from ivr.cli import cli
from ivr.errors import AsteriskError, ConfigError
from ivr.settings.config import Config, check_config, load_config
from ivr.settings.lines import Line, LineSettings

REPO = Path(__file__).resolve().parents[2]
ENV = {"IVR_AMI_SECRET": "s3cret-Value"}

BASE = """\
asterisk:
  agi: {host: 127.0.0.1, port: 4599}
recordings: {dir: calls}
prompts: {dir: prompts, voices: {pl: pl, en: en-gb}}
fallback: operator
departments:
  operator: {queue: operator, members: [PJSIP/100]}
"""

LINES = BASE + """\
lines:
  "+48221234567": main
  "800123456": faq
  _4822199XXXX: faq
  default: main
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def findings(tmp_path: Path, text: str) -> list[str]:
    _, found = check_config(write(tmp_path, text))
    return [str(d) for d in found if d.is_error]


def context(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"[{name}]")
    body = []
    for line in lines[start + 1:]:
        if line.startswith("["):
            break
        body.append(line)
    return body


def extension(text: str, exten: str) -> list[str]:
    """The priorities of one extension of [ivr]."""
    body = context(text, "ivr")
    start = body.index(f"exten => {exten},1,NoOp(IVR call ${{UNIQUEID}} to ${{EXTEN}})")
    out = [body[start]]
    for line in body[start + 1:]:
        if not line.startswith(" same"):
            break
        out.append(line)
    return out


# --- config.yaml -----------------------------------------------------------------------------
def test_lines_are_read_in_order_with_the_default(tmp_path):
    config = load_config(write(tmp_path, LINES))
    assert [(line.number, line.flow) for line in config.lines.lines] == [
        ("+48221234567", "main"), ("800123456", "faq"), ("_4822199XXXX", "faq")]
    assert config.lines.default == "main"
    # where each flow is named: the place of a finding about it
    assert [(w.line, w.column) for _, _, w in config.lines.written()] == [(9, 19), (10, 16), (11, 17), (12, 12)]


def test_without_lines_every_call_starts_in_main(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config.lines == LineSettings() and config.lines.default == "main" and config.lines.written() == []


@pytest.mark.parametrize("entry, message", [
    ("800123456: faq", 'write the number 800123456 of a line in quotes, such as "800123456"'),
    ('"22-123": faq', '"22-123" is no number of a line'),
    ('"12 34": faq', '"12 34" is no number of a line'),
    ('"_48[a-z]X": faq', '"_48[a-z]X" is no number of a line'),
    ('"800;evil": faq', '"800;evil" is no number of a line'),
    ('"800,1,System(x)": faq', "is no number of a line"),
    ('"800": "faq)"', 'line "800" must name a flow, such as main, not "faq)"'),
    ('"800": [faq]', 'line "800" must name a flow, such as main, not a list'),
    ("default: 7", "the default line must name a flow, such as main, not 7"),
])
def test_a_bad_line_is_reported_where_it_is_written(tmp_path, entry, message):
    [error] = findings(tmp_path, BASE + f"lines:\n  {entry}\n")
    column = 3 if "number" in message else entry.index(":") + 5  # the number, or the flow it names
    assert error.startswith(f"{tmp_path / 'config.yaml'}:9:{column}: ") and message in error, error


def test_the_same_pattern_twice_is_an_error(tmp_path):
    [error] = findings(tmp_path, BASE + 'lines:\n  "_48X.": main\n  "_48x.": faq\n')
    assert ':10:3: line "_48x." is the same pattern as "_48X."' in error


def test_lines_must_be_a_mapping(tmp_path):
    [error] = findings(tmp_path, BASE + "lines: [800123456]\n")
    assert ":8:8: lines must be a mapping of numbers to flows" in error


def test_a_misspelt_section_suggests_lines(tmp_path):
    [error] = findings(tmp_path, BASE + 'line: {"800": faq}\n')
    assert 'did you mean "lines"?' in error


# --- the flows they name ------------------------------------------------------------------------
EXAMPLE = (REPO / "config.yaml").read_text(encoding="utf-8")


def installation(tmp_path: Path, old: str = "", new: str = "") -> Path:
    """The example installation (config.yaml, flows/, data/), `old` replaced by `new` in config.yaml."""
    assert old in EXAMPLE
    shutil.copytree(REPO / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    shutil.copytree(REPO / "data", tmp_path / "data")
    return write(tmp_path, EXAMPLE.replace(old, new))


def at(text: str) -> str:
    """line:col of `text` in the example config.yaml."""
    before = EXAMPLE[:EXAMPLE.index(text)]
    return f"{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


def ivr(*args: str):
    return CliRunner().invoke(cli, list(args), env=ENV)


def test_validate_names_a_line_whose_flow_does_not_exist_with_a_did_you_mean(tmp_path):
    config = installation(tmp_path, '"800123456": faq', '"800123456": fqa')
    result = ivr("--config", str(config), "validate", str(tmp_path / "flows"))
    assert result.exit_code == 1
    where = at('"800123456": faq').split(":")
    assert (f'config.yaml:{where[0]}:{int(where[1]) + 13}: line "800123456" goes to flow "fqa", which is no flow of the installation '
            f'(did you mean "faq"?) (flows: faq, main)') in result.output


def test_validate_accepts_the_example_lines(tmp_path):
    config = installation(tmp_path)
    result = ivr("--config", str(config), "validate", str(tmp_path / "flows"))
    assert result.exit_code == 0, result.output


def test_asterisk_config_refuses_a_line_to_a_missing_flow_and_writes_nothing(tmp_path):
    config = installation(tmp_path, "  default: main", "  default: mian")
    result = ivr("--config", str(config), "asterisk-config", "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert (f'config.yaml:{at("  default: main").split(":")[0]}:12: the default line goes to flow "mian", which is no flow of the installation '
            '(did you mean "main"?)') in result.stderr
    assert not (tmp_path / "out").exists()


def test_asterisk_config_needs_the_flows_its_lines_name(tmp_path):
    config = write(tmp_path, LINES)  # no flows/ beside it
    result = ivr("--config", str(config), "asterisk-config", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and "no flows/ folder" in result.stderr


def test_asterisk_config_writes_the_example_lines(tmp_path):
    config = installation(tmp_path)
    result = ivr("--config", str(config), "asterisk-config", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "extensions.conf").read_text()
    assert "AGI(agi://127.0.0.1:4573/faq)" in text and "exten => 800123456,1," in text


# --- the dialplan ---------------------------------------------------------------------------------
def test_each_line_is_an_extension_handing_its_calls_to_its_flow(tmp_path):
    text = extensions_conf(load_config(write(tmp_path, LINES)))
    for number, flow in (("+48221234567", "main"), ("800123456", "faq"), ("_4822199XXXX", "faq")):
        assert extension(text, number)[1:] == [
            " same => n,Answer()",
            " same => n,Set(CHANNEL(language)=pl)",
            f" same => n,Set(IVR_RECORDING={tmp_path}/calls/${{STRFTIME(${{EPOCH}},,%Y-%m-%d)}}/${{UNIQUEID}}.wav)",
            " same => n,MixMonitor(${IVR_RECORDING})",
            f" same => n,AGI(agi://127.0.0.1:4599/{flow})",
            " same => n,Goto(ivr-failsafe,s,1)",  # the same fail-safe as every call
        ], number
    for exten in INCOMING_EXTENSIONS:  # every other number: the default flow
        assert extension(text, exten)[5] == " same => n,AGI(agi://127.0.0.1:4599/main)"


def test_lines_come_before_the_catch_alls_and_replace_a_default_extension(tmp_path):
    text = extensions_conf(load_config(write(tmp_path, BASE + 'lines:\n  "100": faq\n  "_X.": faq\n  default: other\n')))
    extens = re.findall(r"^exten => ([^,]+),1,", "\n".join(context(text, "ivr")), re.M)
    assert extens == ["100", "_X.", "_+X.", "s"]
    assert extension(text, "100")[5].endswith("/faq)") and extension(text, "_X.")[5].endswith("/faq)")
    assert extension(text, "s")[5].endswith("/other)") and extension(text, "_+X.")[5].endswith("/other)")


def test_without_lines_every_extension_goes_to_main(tmp_path):
    text = extensions_conf(load_config(write(tmp_path, BASE)))
    assert [line for line in context(text, "ivr") if "AGI(" in line] == [" same => n,AGI(agi://127.0.0.1:4599/main)"] * 4


@pytest.mark.parametrize("line", [Line("800\n[evil]", "faq"), Line("800;x", "faq"), Line("800", "faq,x"),
                                  Line("800", "../etc")])
def test_a_line_built_without_config_yaml_cannot_inject_dialplan(tmp_path, line):
    config = load_config(write(tmp_path, BASE))
    bad = Config(**{**config.__dict__, "lines": LineSettings((line,))})
    with pytest.raises(AsteriskError):
        extensions_conf(bad)


def test_a_line_naming_a_missing_flow_stops_the_flows_from_loading(tmp_path):
    from ivr.installation import load_installation

    config = installation(tmp_path, '"800123456": faq', '"800123456": nope')
    with pytest.raises(ConfigError) as caught:
        load_installation([tmp_path / "flows"], config)
    assert 'goes to flow "nope"' in str(caught.value.diagnostics[0])


def test_validate_of_other_flows_does_not_check_the_installation_lines(tmp_path):
    # flows outside the installation's flows/ folder: its lines name flows not loaded here
    config = installation(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(tmp_path / "flows" / "faq.yaml", other / "faq.yaml")
    result = ivr("--config", str(config), "validate", str(other))
    assert "line" not in result.output and "config.yaml:" not in result.output, result.output


def test_validate_of_one_flow_file_of_the_installation_checks_the_lines(tmp_path):
    config = installation(tmp_path, '"800123456": faq', '"800123456": fqa')
    result = ivr("--config", str(config), "validate", str(tmp_path / "flows" / "main.yaml"))
    assert result.exit_code == 1 and 'line "800123456" goes to flow "fqa"' in result.output


# --- which flow a number starts (`ivr call --exten` plans its keys from it) -------------------------
@pytest.mark.parametrize("number, flow", [
    ("800", "exact"), ("801", "set"), ("806", "any-two"), ("8123", "dot"), ("+4812", "plus"), ("8", "default"),
    ("555", "default"), ("+481", "default"),
])
def test_the_flow_of_a_number_follows_asterisk_s_choice(number, flow):
    lines = LineSettings((Line("_8.", "dot"), Line("_8XX", "any-two"), Line("800", "exact"), Line("_80[0-5]", "set"),
                          Line("_+48X.", "plus")), "default")
    assert lines.flow_for(number) == flow


def test_ivr_call_plans_the_keys_from_the_flow_of_the_number_dialled(tmp_path, monkeypatch):
    config = installation(tmp_path)
    monkeypatch.chdir(tmp_path)
    built = ivr("--config", str(config), "prompts", "build")
    assert built.exit_code == 0, built.output
    result = ivr("--config", str(config), "call", "--dry-run", "--exten", "800123456", "1")
    assert result.exit_code == 0, result.output
    assert "keys planned from flow faq" in result.output and "menu faq_menu" in result.output


def test_the_dialled_number_reaches_no_application_but_noop(tmp_path):
    # ${EXTEN} is whatever the caller's side sent: a comma or ) in it would split or end an
    # application's arguments. It is only logged; the flow comes from config.yaml.
    text = extensions_conf(load_config(write(tmp_path, LINES)))
    uses = [line for line in context(text, "ivr") if "${EXTEN}" in line]
    assert uses and all(re.fullmatch(r"exten => [^,]+,1,NoOp\(IVR call \$\{UNIQUEID\} to \$\{EXTEN\}\)", u) for u in uses)
