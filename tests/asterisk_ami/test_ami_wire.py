"""The one place AMI header values are checked, number normalisation, and back-off."""

from __future__ import annotations

import random

import pytest

from ivr.asterisk.ami import backoff_delay
from ivr.asterisk.ami_wire import checked_headers, header_value, normalise_number
from ivr.errors import AmiError


@pytest.mark.parametrize("value", ["a\r\nAction: Command", "a\nb", "a\rb", "a\x00b", "\r\n"])
def test_line_breaks_and_nul_are_refused_not_stripped(value):
    with pytest.raises(AmiError, match="refused to send AMI header Channel: its value holds a line break") as info:
        header_value("Channel", value)
    assert value not in str(info.value)


def test_values_and_names():
    assert header_value("CallerID", '"Shop: Sales" <225550000>') == '"Shop: Sales" <225550000>'
    assert header_value("Async", True) == "true" and header_value("State", 0) == "0"
    for name in ("Bad Name", "X:Y", "A\r\nB", "", "1x"):
        with pytest.raises(AmiError, match="header named"):
            header_value(name, "v")
    assert checked_headers({"Variable": ["A=1", "B=2"], "Priority": 1}) == {"Variable": ["A=1", "B=2"],
                                                                             "Priority": "1"}
    with pytest.raises(AmiError):
        checked_headers({"Variable": ["A=1", "B=2\r\nAction: Command"]})


@pytest.mark.parametrize("raw, number", [
    ("600100200", "600100200"),
    ("+48 22 555-01-01", "+48225550101"),
    ("(022) 555.01.01", "0225550101"),
    ("+48/601/200/300", "+48601200300"),
])
def test_numbers_are_normalised(raw, number):
    assert normalise_number(raw) == number


@pytest.mark.parametrize("raw", [
    "", "12", "+", "++48600100200", "48+600100200", "600100200@trunk", "PJSIP/600100200", "600100200;2",
    "600 100 200\r\nAction: Command", "600\t100", "６００１００２００", "1" * 21, "abc123456", None,
])
def test_anything_else_is_refused(raw):
    with pytest.raises(AmiError, match="refused to dial"):
        normalise_number(raw)


def test_backoff_grows_is_capped_and_jittered():
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 30.0, rng) for n in range(12)]
    for n, delay in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2 ** n)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 30.0 and delays[-1] >= 15.0
    assert len({round(backoff_delay(3, 0.5, 30.0, rng), 6) for _ in range(20)}) > 1  # jitter
    assert backoff_delay(10_000, 0.5, 30.0, rng) <= 30.0  # no overflow for long outages
