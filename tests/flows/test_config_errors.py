"""Broken config.yaml files: every finding names config.yaml:line:col, what and a fix.

Each case writes a small config.yaml to a temporary folder (with data/vip.csv beside
it) and checks it with `ivr.settings.config.check_config`, as `ivr validate` does.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivr.settings.config import check_config
from ivr.flow.project import check_project

REPO = Path(__file__).resolve().parents[2]

VALID = """\
departments:
  sales:    {queue: sales, members: [PJSIP/101], overflow: backup}
  backup:   {queue: backup, members: [PJSIP/190]}
  operator: {queue: operator, members: [PJSIP/100]}
schedules:
  office:
    timezone: Europe/Warsaw
    weekly: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}
    holidays:
      - {country: PL}
      - 2026-12-31
segments:
  vip: {numbers: data/vip.csv}
fallback: operator
asterisk:
  agi: {host: 127.0.0.1, port: 4573}
  ami: {host: 127.0.0.1, port: 5038, username: ivr, secret: "${IVR_AMI_SECRET}"}
  callback: {channel: "PJSIP/{number}@trunk", context: ivr-callback, timeout: 30s}
"""


def _check(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "vip.csv").write_text("number\n+48221234567\n", encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    config, findings = check_config(path, "config.yaml")
    return config, [str(d) for d in findings]


def test_the_valid_config_of_these_cases_has_no_finding(tmp_path: Path) -> None:
    config, found = _check(tmp_path, VALID)
    assert found == []
    assert config is not None and set(config.departments) == {"sales", "backup", "operator"}
    assert "+48 22 123 45 67" in config.segments["vip"]
    assert (config.asterisk.agi.host, config.asterisk.agi.port) == ("127.0.0.1", 4573)
    assert config.asterisk.ami is not None and config.asterisk.ami.secret == "${IVR_AMI_SECRET}"
    assert config.asterisk.callback.timeout == 30.0


def test_the_repository_config_has_no_finding() -> None:
    config, found = check_config(REPO / "config.yaml", "config.yaml")
    assert [str(d) for d in found] == []
    assert config is not None


CASES = {
    "unknown_section": (
        VALID.replace("segments:", "segmnets:"),
        [
            'config.yaml:12:1: "segmnets" is no section of config.yaml (did you mean "segments"?)',
        ],
    ),
    "bad_timezone": (
        VALID.replace("Europe/Warsaw", "Warsaw"),
        [
            'config.yaml:7:15: unknown time zone "Warsaw" (did you mean "Europe/Warsaw"?)',
        ],
    ),
    "timezone_not_a_name": (
        VALID.replace("Europe/Warsaw", "UTC+1"),
        [
            'config.yaml:7:15: unknown time zone "UTC+1"; use an IANA name such as Europe/Warsaw, which also follows summer time',
        ],
    ),
    "weekly_range_past_midnight": (
        VALID.replace('mon-fri: "08:00-18:00"', 'mon-fri: "18:00-08:00"'),
        [
            'config.yaml:8:23: "18:00-08:00" ends before it starts; write hours past midnight as two ranges, '
            '"18:00-24:00" on one day and "00:00-08:00" on the next',
        ],
    ),
    "weekly_bad_day_and_hours": (
        VALID.replace('{mon-fri: "08:00-18:00", sat: "09:00-13:00"}', '{mon-fry: "08:00-18:00", sat: "9-13"}'),
        [
            'config.yaml:8:14: "mon-fry" is not a day or day range; use mon..sun, "mon-fri" or "sat,sun"',
            'config.yaml:8:43: hours must look like "08:00-18:00" (or "closed"), not "9-13"',
        ],
    ),
    "unknown_holiday_country": (
        VALID.replace("{country: PL}", "{country: XX}"),
        [
            'config.yaml:10:19: no public holidays are known for country "XX"; use a code such as PL or DE',
        ],
    ),
    "holiday_country_by_name": (
        VALID.replace("{country: PL}", "{country: Poland}"),
        [
            'config.yaml:10:19: no public holidays are known for country "Poland"; use a code such as PL or DE (Poland is PL)',
        ],
    ),
    "holiday_no_real_date": (
        VALID.replace("2026-12-31", "2026-13-01"),
        [
            'config.yaml:11:9: holiday "2026-13-01" is not a real date (month must be in 1..12); write year-month-day, such as 2026-12-24',
        ],
    ),
    "missing_segment_file": (
        VALID.replace("data/vip.csv", "data/vips.csv"),
        [
            'config.yaml:13:18: cannot read the numbers of segment "vip" from "data/vips.csv": No such file or directory '
            '(did you mean "data/vip.csv"?)',
        ],
    ),
    "overflow_to_unknown_department": (
        VALID.replace("overflow: backup", "overflow: bakup"),
        [
            'config.yaml:2:60: overflow of department "sales" goes to "bakup", which is no department (did you mean "backup"?)',
        ],
    ),
    "unknown_fallback_and_strategy": (
        VALID.replace("fallback: operator", "fallback: operatr").replace(
            "members: [PJSIP/190]}", "members: [PJSIP/190], strategy: roundrobin}"
        ),
        [
            'config.yaml:3:61: unknown queue strategy "roundrobin" (strategies: ringall, leastrecent, '
            "fewestcalls, random, rrmemory, linear, wrandom, rrordered)",
            'config.yaml:14:11: fallback department "operatr" is no department (did you mean "operator"?)',
        ],
    ),
    "duplicate_key_and_more_in_one_run": (
        VALID.replace("  backup:", "  sales:    {queue: sales2, members: [PJSIP/102]}\n  backup:").replace(
            "Europe/Warsaw", "Europe/Warsw"
        ),
        [
            'config.yaml:3:3: duplicate key "sales" in departments (first on line 2); '
            "YAML would silently keep only the last one, so remove or rename one of them",
            'config.yaml:8:15: unknown time zone "Europe/Warsw" (did you mean "Europe/Warsaw"?)',
        ],
    ),
    "asterisk_port_typo": (
        VALID.replace("port: 4573", "port: 45x3"),
        [
            'config.yaml:16:32: AGI port must be a number from 1 to 65535, not "45x3"',
        ],
    ),
    "asterisk_unknown_keys": (
        VALID.replace("host: 127.0.0.1, port: 4573", "host: 127.0.0.1, prot: 4573").replace("  callback:", "  calback:"),
        [
            'config.yaml:16:26: "prot" is no field of asterisk.agi (did you mean "port"?)',
            'config.yaml:18:3: "calback" is no field of asterisk (did you mean "callback"?)',
        ],
    ),
    "asterisk_wrong_types": (
        VALID.replace('{channel: "PJSIP/{number}@trunk", context: ivr-callback, timeout: 30s}', '"PJSIP/{number}@trunk"')
        .replace("port: 5038", "port: true"),
        [
            "config.yaml:17:32: AMI port must be a number from 1 to 65535, not true (a yes/no value)",
            'config.yaml:18:13: asterisk.callback must be a mapping such as {channel: "PJSIP/{number}@trunk", '
            'context: ivr-callback}, not "PJSIP/{number}@trunk"',
        ],
    ),
    "asterisk_not_a_mapping": (
        VALID.replace(VALID[VALID.index("asterisk:"):], "asterisk: 127.0.0.1:4573\n"),
        [
            'config.yaml:15:11: asterisk must be a mapping such as {agi: {host: 127.0.0.1, port: 4573}}, not "127.0.0.1:4573"',
        ],
    ),
    "callback_channel_without_number": (
        VALID.replace('"PJSIP/{number}@trunk"', '"PJSIP/trunk"'),
        [
            "config.yaml:18:23: call-back channel must be a dial string holding {number}, where the customer's number "
            'goes, such as PJSIP/{number}@trunk, not "PJSIP/trunk"',
        ],
    ),
    "ami_secret_written_into_the_file": (  # and never echoed
        VALID.replace('"${IVR_AMI_SECRET}"', "hunter2"),
        [
            'config.yaml:17:61: AMI secret must name an environment variable, such as "${IVR_AMI_SECRET}"; '
            "a secret is never written into config.yaml",
        ],
    ),
    "ami_user_permit_and_callback_values": (
        VALID.replace("username: ivr", "username: General").replace("timeout: 30s", "timeout: soon")
        .replace("context: ivr-callback", "context: ivr callback")
        .replace("port: 5038", "port: 5038, permit: [127.0.0.1/255.255.255.255, everyone]"),
        [
            'config.yaml:17:74: AMI permit must be addresses such as 127.0.0.1/255.255.255.255, not "everyone"',
            'config.yaml:17:95: AMI username cannot be "general": that is the [general] section of manager.conf',
            "config.yaml:18:56: call-back context must be letters, digits, '-' and '_' (starting with a letter or "
            'digit), or null to run Queue() directly, not "ivr callback"',
            'config.yaml:18:79: call-back timeout must be a duration such as 30s, not "soon"',
        ],
    ),
}


@pytest.mark.parametrize("text, expected", CASES.values(), ids=CASES.keys())
def test_broken_config_reports_exactly_the_expected_findings(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert text != VALID, "the case does not change the valid config"
    config, found = _check(tmp_path, text)
    assert found == expected
    assert config is None  # any error: no Config to run with


FLOW = """\
flow: main
languages: [en]
start: open_check
prompts:
  closed: We are closed.
nodes:
  open_check: {type: hours, schedule: office, open: sales, closed: closed}
  sales: {type: transfer, department: sales}
  closed: {type: hangup, prompt: closed}
"""


def test_a_config_error_is_reported_once_not_again_in_every_flow(tmp_path: Path) -> None:
    _check(tmp_path, VALID.replace("Europe/Warsaw", "Warsaw").replace("members: [PJSIP/101]", "members: PJSIP/101"))
    (tmp_path / "main.yaml").write_text(FLOW, encoding="utf-8")
    report = check_project([tmp_path / "main.yaml"], tmp_path / "config.yaml", siblings=False)
    found = [(Path(d.location.file).name, d.location.line, d.message) for d in report.diagnostics]
    # the schedule and the department are broken in config.yaml: the flow's references
    # to them are not errors of their own, but the flow cannot be compiled either
    assert found == [
        ("config.yaml", 2, "members must be a list of Asterisk interfaces such as PJSIP/101, not \"PJSIP/101\""),
        ("config.yaml", 7, 'unknown time zone "Warsaw" (did you mean "Europe/Warsaw"?)'),
    ]
    assert report.flows == {}
    assert not report.ok
