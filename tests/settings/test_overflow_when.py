"""overflow_when in config.yaml: each limit parsed, every mistake reported at its
config.yaml:line:col with a did-you-mean, and the reasons a queue's state gives."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivr.settings.config import check_config
from ivr.settings.overflow import OverflowWhen, short_duration

BASE = """\
fallback: backup
departments:
  sales:  {queue: sales, members: [PJSIP/101], overflow: backup, overflow_when: LIMITS}
  backup: {queue: backup, members: [PJSIP/190]}
"""


def _check(tmp_path: Path, limits: str, text: str = BASE):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text.replace("LIMITS", limits)), encoding="utf-8")
    config, findings = check_config(path, "config.yaml")
    return config, [str(d) for d in findings]


def test_limits_are_parsed(tmp_path):
    config, found = _check(tmp_path, "{waiting: 5, longest_wait: 2m, no_free_agents: true}")
    assert found == []
    assert config.departments["sales"].overflow_when == OverflowWhen(5, 120.0, True)
    assert config.departments["backup"].overflow_when is None


@pytest.mark.parametrize("limits, expected", [
    ("{waitng: 5}", ['config.yaml:3:82: "waitng" is no field of overflow_when (did you mean "waiting"?) '
                     "(fields: waiting, longest_wait, no_free_agents)"]),
    ("{waiting: 0}", ["config.yaml:3:91: waiting must be a whole number of callers from 1, not 0"]),
    ("{waiting: five}", ['config.yaml:3:91: waiting must be a whole number of callers from 1, not "five"']),
    ("{longest_wait: 2 minutes}", ['config.yaml:3:96: longest_wait must be a duration such as 90s or 2m, '
                                   'not "2 minutes"']),
    ("{no_free_agents: yes please}", ['config.yaml:3:98: no_free_agents must be true or false, not "yes please"']),
    ("{no_free_agents: false}", ['config.yaml:3:81: overflow_when of department "sales" sets no limit: give '
                                 "waiting, longest_wait or no_free_agents: true"]),
    ("5", ['config.yaml:3:81: overflow_when of department "sales" must be a mapping such as {waiting: 5, '
           "longest_wait: 2m, no_free_agents: true}, not 5"]),
])
def test_mistakes_name_where_and_what(tmp_path, limits, expected):
    config, found = _check(tmp_path, limits)
    assert found == expected
    assert config is None


def test_limits_without_an_overflow_department_are_an_error(tmp_path):
    text = BASE.replace(", overflow: backup", "")
    _config, found = _check(tmp_path, "{waiting: 5}", text)
    assert found == ['config.yaml:3:48: department "sales" has overflow_when but no overflow: name the department '
                     "that takes its callers at peaks (overflow: backup)"]


def test_a_misspelt_overflow_when_gets_a_did_you_mean(tmp_path):
    _config, found = _check(tmp_path, "{waiting: 5}", BASE.replace("overflow_when", "overflow_wen"))
    assert found == ['config.yaml:3:66: "overflow_wen" is no field of a department (did you mean "overflow_when"?)']


def test_reasons_in_words():
    limits = OverflowWhen(waiting=5, longest_wait=120.0, no_free_agents=True)
    assert limits.reasons("sales", 4, 119.0, 1, 2) == []
    assert limits.reasons("sales", 5, 30.0, 1, 2) == ["5 callers waiting in sales (limit 5)"]
    assert limits.reasons("sales", 1, 130.0, 1, 2) == ["longest wait 2m10s in sales (limit 2m)"]
    assert limits.reasons("sales", 0, 0.0, 0, 2) == ["no free agent in sales (2 logged in, none free)"]
    assert limits.reasons("sales", 6, 125.0, 0, 1) == [
        "6 callers waiting in sales (limit 5)", "longest wait 2m5s in sales (limit 2m)",
        "no free agent in sales (1 logged in, none free)"]
    assert OverflowWhen(waiting=1).reasons("sales", 1, 0.0, 0, 0) == ["1 caller waiting in sales (limit 1)"]
    assert OverflowWhen(longest_wait=10.0).reasons("sales", 0, 0.0, 0, 0) == []


def test_short_durations():
    assert [short_duration(s) for s in (0, 45, 60, 130, 3600, 3905, 89.6)] == [
        "0s", "45s", "1m", "2m10s", "1h", "1h5m5s", "1m30s"]
