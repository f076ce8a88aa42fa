"""Caller segments (ivr.settings.segments): numbers written in different ways match the same
entry, an empty or withheld number never matches, and lists come from config.yaml or a
CSV file with a header and comments."""

import pytest

from ivr.settings.config import check_config
from ivr.settings.segments import Lookup, Segment, normalize_number, read_numbers_csv


@pytest.mark.parametrize(
    "number, expected",
    [
        ("+48 22 555 01 01", "225550101"),
        ("0225550101", "225550101"),
        ("48225550101", "225550101"),
        ("(0-22) 555-01-01", "225550101"),
        ("0048225550101", "225550101"),
        ("5550101", "5550101"),  # shorter than match_digits: kept whole
        ("", ""),
        ("anonymous", ""),
    ],
)
def test_normalize_number(number, expected):
    assert normalize_number(number, 9) == expected


def test_normalize_number_without_a_number():
    assert normalize_number(None, 9) == ""


def segment_from(tmp_path, body: str, files: dict[str, str] = {}):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text("segments:\n  vip: " + body + "\n", encoding="utf-8")
    config, findings = check_config(path)
    assert config is not None, [str(d) for d in findings]
    return config.segments["vip"]


@pytest.mark.parametrize("caller", ["+48 22 555 01 01", "0225550101", "48225550101", "+48225550101", "0048 22 555 0101"])
def test_numbers_written_differently_match(tmp_path, caller):
    vip = segment_from(tmp_path, '{numbers: ["+48 22 555 01 01"]}')
    assert caller in vip


@pytest.mark.parametrize("caller", ["", "anonymous", "+48 22 555 01 02", "+48 23 555 01 01", "101"])
def test_other_numbers_and_no_number_never_match(tmp_path, caller):
    vip = segment_from(tmp_path, '{numbers: ["+48 22 555 01 01"]}')
    assert caller not in vip


def test_numbers_from_a_csv_file(tmp_path):
    csv = (
        "number,customer\n"
        "# premium customers\n"
        "+48 22 555 01 01,Hurtownia Nowak\n"
        "\n"
        "\"+48 601 200 300\",\"Kowalski, Logistics\"\n"
        "n/a,no number\n"
    )
    vip = segment_from(tmp_path, "{numbers: vip.csv}", {"vip.csv": csv})
    assert vip.numbers == frozenset({"225550101", "601200300"})
    assert "0601200300" in vip
    assert "+48601200300" in vip


def test_match_digits(tmp_path):
    vip = segment_from(tmp_path, '{numbers: ["+48 22 555 01 01"], match_digits: 11}')
    assert vip.match_digits == 11
    assert "+48 22 555 01 01" in vip
    assert "48225550101" in vip
    assert "0225550101" not in vip  # only 10 digits: the country code is needed now


def test_read_numbers_csv_skips_headers_comments_and_blank_rows():
    text = "phone\n# comment\n\n+48 22 555 01 01\n12\n600100200,x\n"
    assert read_numbers_csv(text) == ["+48 22 555 01 01", "600100200"]


def test_empty_segment_matches_nobody():
    empty = Segment("nobody", frozenset())
    assert "" not in empty
    assert "+48225550101" not in empty


def test_repository_vip_list():
    from helpers import REPO
    from ivr.settings.config import load_config

    vip = load_config(REPO / "config.yaml").segments["vip"]
    assert "+48225550101" in vip
    assert "0225550101" in vip
    assert "+442079460958" in vip
    assert "+48221234567" not in vip


# --- CSV files: what cannot be read is an error where config.yaml names it; odd rows are warnings in the file
def findings_of(tmp_path, body: str, files: dict[str, bytes] = {}):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "config.yaml"
    path.write_text("segments:\n  vip: " + body + "\n", encoding="utf-8")
    config, findings = check_config(path, "config.yaml")
    return config, [str(d) for d in findings]


def test_a_csv_file_that_is_missing_is_an_error_at_its_name(tmp_path):
    config, said = findings_of(tmp_path, "{numbers: data/vip.csv}")
    assert config is None
    assert said == ['config.yaml:2:18: cannot read the numbers of segment "vip" from "data/vip.csv": No such file or directory']


def test_a_csv_file_that_is_no_utf8_text_is_an_error_saying_where(tmp_path):
    config, said = findings_of(tmp_path, "{numbers: vip.csv}", {"vip.csv": b"number\n+48 22 555 01 01\n+48 601 200 300,Caf\xe9\n"})
    assert config is None
    assert said == ['config.yaml:2:18: the numbers of segment "vip" in "vip.csv" are not UTF-8 text (line 3: byte 0xe9); '
                    "save the file as UTF-8"]


def test_rows_that_are_no_phone_numbers_are_warnings_at_their_line_in_the_csv_file(tmp_path):
    text = "number,customer\n+48 22 555 01 01,A\n\n# a comment\nKowalski,B\n12,C\n601 2OO 300,D\n\ufeff,E\n"
    config, said = findings_of(tmp_path, "{numbers: vip.csv}", {"vip.csv": text.encode()})
    assert config is not None and config.segments["vip"].numbers == frozenset({"225550101"})
    assert said == [
        'vip.csv:5:1: warning: segment "vip": "Kowalski" is no phone number (at least 4 digits; \'#\' starts a comment); the row is left out',
        'vip.csv:6:1: warning: segment "vip": "12" is no phone number (at least 4 digits; \'#\' starts a comment); the row is left out',
        'vip.csv:7:1: warning: segment "vip": "601 2OO 300" is no phone number (at least 4 digits; \'#\' starts a comment); the row is left out',
        'vip.csv:8:1: warning: segment "vip": "\ufeff" is no phone number (at least 4 digits; \'#\' starts a comment); the row is left out',
    ]
    assert config.segments["vip"].source == tmp_path / "vip.csv"


def test_a_utf8_file_with_a_byte_order_mark_reads_as_any_other(tmp_path):
    config, said = findings_of(tmp_path, "{numbers: vip.csv}", {"vip.csv": "\ufeffnumber\n+48 22 555 01 01\n".encode()})
    assert said == [] and "+48225550101" in config.segments["vip"]


# --- lookup segments: the settings, and every mistake with file:line:col
def test_a_lookup_segment_with_its_defaults(tmp_path):
    config, said = findings_of(tmp_path, '{lookup: {url: "http://crm.example/vip?number={number}"}}')
    assert said == []
    segment = config.segments["vip"]
    assert segment.numbers == frozenset() and segment.source is None
    assert segment.lookup == Lookup("http://crm.example/vip?number={number}", 0.5, "json", "segment", 60.0, ())


def test_a_lookup_segment_with_every_setting(tmp_path):
    body = ('\n    lookup:\n      url: "https://${CRM_HOST}/api/customers/{number}/premium"\n      timeout: 800ms\n'
            '      answer: json\n      field: premium\n      cache: 5m\n      headers: {Authorization: "Bearer ${CRM_TOKEN}", Accept: application/json}')
    config, said = findings_of(tmp_path, body)
    assert said == []
    assert config.segments["vip"].lookup == Lookup("https://${CRM_HOST}/api/customers/{number}/premium", 0.8, "json",
                                                   "premium", 300.0, (("Authorization", "Bearer ${CRM_TOKEN}"), ("Accept", "application/json")))


@pytest.mark.parametrize("lookup, message", [
    ('{url: "crm.example/vip?n={number}"}', 'config.yaml:2:23: lookup of segment "vip": url must start with http:// or https://, not "crm.example/vip?n={number}"'),
    ('{url: "http://crm.example/vip"}', "config.yaml:2:23: lookup of segment \"vip\": url must hold {number} where the caller's number goes, such as \"http://crm.example/vip?number={number}\""),
    ('{url: "http://{number}.crm.example/"}', 'config.yaml:2:23: lookup of segment "vip": url must not put {number} into the host: the caller chooses it'),
    ('{url: "http://crm.example/{number}/{name}"}', 'config.yaml:2:23: lookup of segment "vip": url may hold only {number} and ${NAME} in braces, not "http://crm.example/{number}/{name}"'),
    ('{url: "http://crm.example:99999/{number}"}', 'config.yaml:2:23: lookup of segment "vip": url "http://crm.example:99999/{number}" is no address: Port out of range 0-65535'),
    ('{url: "http:///{number}"}', 'config.yaml:2:23: lookup of segment "vip": url "http:///{number}" names no host'),
    ("{url: 42}", 'config.yaml:2:23: lookup of segment "vip": url must be an http or https address with {number}, such as "http://crm.example/vip?number={number}", not 42'),
    ('{timeout: 1s}', 'config.yaml:2:9: lookup of segment "vip": url must be an http or https address with {number}, such as "http://crm.example/vip?number={number}", not nothing'),
    ('{url: "http://crm/{number}", timeout: 10s}', "config.yaml:2:55: timeout of a lookup must be from 50ms to 5s (the caller waits in silence meanwhile), not \"10s\""),
    ('{url: "http://crm/{number}", timeout: soon}', 'config.yaml:2:55: timeout of a lookup must be a duration such as 500ms or 1s, not "soon"'),
    ('{url: "http://crm/{number}", answer: xml}', 'config.yaml:2:54: answer of a lookup is json (200 with {"segment": true}) or status (200 in, 404 not in), not "xml"'),
    ('{url: "http://crm/{number}", answer: status, field: vip}', "config.yaml:2:62: field is read only with answer: json; with answer: status the HTTP status decides"),
    ('{url: "http://crm/{number}", cache: always}', 'config.yaml:2:53: cache of a lookup must be a duration up to 1 day such as 1m, or 0 for none, not "always"'),
    ('{url: "http://crm/{number}", timout: 1s}', 'config.yaml:2:46: "timout" is no field of a lookup (did you mean "timeout"?)'),
    ('{url: "http://crm/{number}", headers: {Authorization: "Bearer abc123"}}', 'config.yaml:2:71: header Authorization carries a secret: write it as an environment variable, such as "Bearer ${CRM_TOKEN}"; a secret is never written into config.yaml'),
    ('{url: "http://crm/{number}", headers: {"X Bad": "1"}}', 'config.yaml:2:56: "X Bad" is no HTTP header name'),
    ('"http://crm/{number}"', 'config.yaml:2:17: lookup of segment "vip" must be a mapping such as {url: "http://crm.example/vip?number={number}", timeout: 500ms}, not "http://crm/{number}"'),
])
def test_a_lookup_mistake_is_reported_where_it_is(tmp_path, lookup, message):
    config, said = findings_of(tmp_path, "{lookup: " + lookup + "}")
    assert config is None
    assert message in said, said
    assert "abc123" not in "\n".join(said)  # a secret written by mistake is never echoed


def test_a_segment_has_numbers_or_a_lookup_not_both(tmp_path):
    config, said = findings_of(tmp_path, '{numbers: ["+48 22 555 01 01"], lookup: {url: "http://crm/{number}"}}')
    assert said == ['config.yaml:2:40: segment "vip" has both numbers and lookup: give one of them']


def test_a_lookup_segment_has_no_numbers_to_be_in():
    gold = Segment("gold", lookup=Lookup("http://crm/{number}"))
    assert "+48225550101" not in gold


def test_ivr_validate_reports_a_broken_lookup_with_file_line_and_column(tmp_path):
    import shutil

    from click.testing import CliRunner

    from helpers import REPO
    from ivr.cli import cli

    text = (REPO / "config.yaml").read_text(encoding="utf-8").replace(
        "  vip: {numbers: data/vip.csv}",
        '  vip:\n    lookup: {url: "htp://crm.example/vip?number={number}", timeout: 30s}')
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    shutil.copytree(REPO / "flows", tmp_path / "flows")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "validate", str(tmp_path / "flows")])
    assert result.exit_code == 1
    line = next(n for n, text in enumerate(text.splitlines(), 1) if "htp://" in text)
    assert f'config.yaml:{line}:19: lookup of segment "vip": url must start with http:// or https://, not "htp://crm.example/vip?number={{number}}"' in result.output
    assert f"config.yaml:{line}:69: timeout of a lookup must be from 50ms to 5s (the caller waits in silence meanwhile), not \"30s\"" in result.output


def test_the_readme_premium_callers_settings_are_valid_both_ways(tmp_path):
    """README.md's "Premium callers" block: the CSV segment as written, and the lookup in its comment."""
    import re

    from helpers import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Premium callers", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    as_written = block
    lookup = "\n".join(re.sub(r"^  # (?=\s*\S)", "  ", line) for line in block.splitlines()
                       if not line.lstrip().startswith("vip: {numbers") and "or ask" not in line)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "vip.csv").write_text((REPO / "data" / "vip.csv").read_text(encoding="utf-8"), encoding="utf-8")
    for text, kind in ((as_written, "numbers"), (lookup, "lookup")):
        (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
        config, findings = check_config(tmp_path / "config.yaml")
        assert config is not None and findings == [], (kind, text, [str(d) for d in findings])
        vip = config.segments["vip"]
        assert (vip.lookup is not None) == (kind == "lookup")
    assert vip.lookup.url == "https://crm.example/api/premium?number={number}" and vip.lookup.timeout == 0.5
