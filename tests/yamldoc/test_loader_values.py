"""The flow loader reads values exactly as PyYAML's safe loader does.

The loader builds data straight from the parser's events (for the marks, and for speed,
it resolves plain scalars itself and remembers each word's type within a file). Whatever
the text, the data must equal `yaml.safe_load`'s, apart from the documented differences:
a key written as a YAML 1.1 boolean or null word (`yes:`, `no:`, `null:`) stays that word;
of two equal keys the first is kept and the second reported; a date that is no real date
(`2026-13-01`, which makes the safe loader raise ValueError) stays text, for the field's
own check to report.
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.yamldoc.loader import LoadError, load_text

# plain words that YAML 1.1 reads as something other than text, and look-alikes that are
# text; each may come back many times in one file, as a key and as a value
WORDS = [
    "yes", "no", "on", "off", "true", "False", "NULL", "null", "~", "y", "n", "Yes", "ON",
    "1", "-1", "+1", "0x1F", "010", "0o17", "1_000", "1:30", "1.5", "-.5", ".inf", "-.Inf", ".nan",
    "2026-11-24", "2026-11-24 10:00:00",
    "next", "none", "type", "timeout", "on_timeout", "off_hours", "nodes", "n12", "yesterday",
    "true_value", "1a", "0x", "1.2.3", "-", "+", ".", "t", "f", "o", "menu", "transfer",
]
BOOLEAN_KEYS = {"yes", "no", "on", "off", "true", "False", "NULL", "null", "~", "y", "n", "Yes", "ON"}

word = st.sampled_from(WORDS)
key = word.filter(lambda w: w not in BOOLEAN_KEYS)


def _mapping_text(pairs: list[tuple[str, object]], indent: int = 0) -> str:
    out = []
    for k, v in pairs:
        if isinstance(v, list):
            out.append(" " * indent + f"{k}:")
            out.append(_mapping_text(v, indent + 2))
        else:
            out.append(" " * indent + f"{k}: {v}")
    return "\n".join(out)


def _pairs(depth: int):
    value = word if depth == 0 else st.one_of(word, st.deferred(lambda: _pairs(depth - 1)))
    return st.lists(st.tuples(key, value), min_size=1, max_size=8, unique_by=lambda p: p[0])


@settings(max_examples=300, deadline=None)
@given(_pairs(2), st.lists(word, max_size=8))
def test_plain_words_read_as_the_safe_loader_reads_them(pairs, listed):
    text = _mapping_text(pairs)
    if listed:
        text += "\nlisted: [" + ", ".join(listed) + "]"
    _assert_same(text)


def _assert_same(text: str) -> None:
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:  # a lone "-" after a key opens a list: not YAML either way
        with pytest.raises(LoadError):
            load_text(text, "gen.yaml", strict=False)
        return
    doc = load_text(text, "gen.yaml", strict=False)
    if any("duplicate key" in d.message for d in doc.problems):
        return  # `1:` and `+1:` are one key: reported, and the first kept (the safe loader keeps the last)
    assert doc.data == expected, text


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12), word),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(min_size=1, max_size=8) | key, inner, max_size=4)),
                    max_leaves=25))
def test_dumped_data_reads_back_as_the_safe_loader_reads_it(data):
    text = yaml.safe_dump({"root": data}, allow_unicode=True)
    assert load_text(text, "gen.yaml", strict=False).data == yaml.safe_load(text), text


def test_a_boolean_word_as_a_key_stays_the_word_and_as_a_value_is_a_boolean():
    doc = load_text("no: no\nnext: no\nn: null\nyes: [yes, next, n12]\n", "gen.yaml", strict=False)
    assert doc.data == {"no": False, "next": False, "n": None, "yes": [True, "next", "n12"]}


def test_a_date_that_is_no_real_date_stays_text():
    assert load_text("day: 2026-13-01\nnext: 2026-12-01\n", "gen.yaml", strict=False).data == {
        "day": "2026-13-01", "next": dt.date(2026, 12, 1)}
