"""config.yaml's `announce` of a department (ivr.settings.announce): the forms it takes, its
defaults, and a clear error with file:line:col for each mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivr.settings.announce import OFF, ON, Announcements
from ivr.settings.config import check_config


def _check(tmp_path: Path, announce: str) -> tuple[object, list[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""\
        fallback: sales
        departments:
          sales:
            queue: sales
            members: [PJSIP/101]
            announce: {announce}
        """), encoding="utf-8")
    config, findings = check_config(path, "config.yaml")
    return config, [str(d) for d in findings]


def _announce(tmp_path: Path, announce: str) -> Announcements | None:
    config, found = _check(tmp_path, announce)
    assert found == [] and config is not None, found
    return config.departments["sales"].announce


@pytest.mark.parametrize("written, expected", [
    ("on", ON), ("yes", ON), ("true", ON), ('"on"', ON),
    ("off", OFF), ("no", OFF), ("false", OFF),
    ("null", None),  # as if not written: a flow may still turn the position on
])
def test_on_and_off(tmp_path, written, expected):
    assert _announce(tmp_path, written) == expected


def test_on_says_the_position_and_once_the_wait_every_minute(tmp_path):
    assert (ON.position, ON.wait, ON.every, ON.min_interval, ON.round, ON.reminder) == (True, "once", 60, 15, 0, None)
    assert ON.speaks and not OFF.speaks and not Announcements().speaks


def test_every_field(tmp_path):
    found = _announce(tmp_path, "{position: true, position_limit: 5, wait: yes, every: 30s, min_interval: 20s, "
                                "round: 10s, reminder: 1m}")
    assert found == Announcements(True, 5, "yes", 30, 20, 10, 60)


def test_defaults_of_a_mapping(tmp_path):
    # the position is left to the flows; min_interval never exceeds every
    assert _announce(tmp_path, "{wait: once}") == Announcements(None, None, "once", 60, 15, 0, None)
    assert _announce(tmp_path, "{every: 10s}").min_interval == 10
    assert _announce(tmp_path, "{position_limit: 3}").position is True  # a limit is a position announcement
    assert _announce(tmp_path, "{wait: false}").wait == "no"
    assert _announce(tmp_path, "{round: 0}").round == 0 and _announce(tmp_path, "{round: 0s}").round == 0


@pytest.mark.parametrize("written, message", [
    ("{positon: true}", '6:16: "positon" is no field of announce (did you mean "position"?)'),
    ("{position: maybe}", '6:26: position must be true or false, not "maybe"'),
    ("{wait: onse}", '6:22: wait must be yes, once or no, not "onse" (did you mean "once"?)'),
    ("{every: soon}", '6:23: every of announce must be a duration such as 60s, not "soon"'),
    ("{every: 1.5s}", "6:23: every of announce must be whole seconds (Asterisk counts in seconds)"),
    ("{round: 7s}", "6:23: round must be one of 0s, 5s, 10s, 15s, 20s, 30s (Asterisk ignores any other)"),
    ("{position_limit: 0}", "6:32: position_limit must be a whole number from 1 to 100"),
    ("{every: 20s, min_interval: 30s}", "6:42: min_interval (30s) is longer than every (20s)"),
    ("[position]", '6:15: announce of department "sales" must be on, off or a mapping such as {position: true, '
                   'wait: once, every: 60s}, not a list'),
])
def test_mistakes_name_the_place_and_the_fix(tmp_path, written, message):
    config, found = _check(tmp_path, written)
    assert config is None
    assert any(f"config.yaml:{message}" in line for line in found), found
