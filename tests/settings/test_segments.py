"""Caller segments (ivr.settings.segments): numbers written in different ways match the same
entry, an empty or withheld number never matches, and lists come from config.yaml or a
CSV file with a header and comments."""

import pytest

from ivr.settings.config import check_config
from ivr.settings.segments import Segment, normalize_number, read_numbers_csv


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
