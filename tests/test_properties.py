"""Property tests: the checker never crashes on odd input, and calls through the examples always end.

1. Any generated YAML (flow-shaped data, random text, mutated example flows) either
   compiles or raises FlowError whose every finding has a location in the file and a
   message; any other exception is a bug in the loader or the checker.
2. Every simulated call through flows/ (random keys, times, callers, queue results)
   ends in an outcome within a bounded number of steps, with a monotonic clock, no
   engine error, and never a sensitive account number in its events.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ivr.channels.scripted import QueueScript
from ivr.settings.config import Config, load_config
from ivr.engine import Engine
from ivr import events as ev
from ivr.errors import FlowError
from ivr.flow import spec
from ivr.flow.model import Flow
from ivr.flow.nodes import NODE_TYPES
from ivr.flow.project import compile_text, load_flows
from ivr.simulation.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
FILE = "gen.yaml"
MAX_NODES_ENTERED = 200

# IVR_PROPERTY_EXAMPLES=5000 for a longer hunt (a nightly run, say)
EXAMPLES = int(os.environ.get("IVR_PROPERTY_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@functools.cache
def config() -> Config:
    return load_config(ROOT / "config.yaml")


@functools.cache
def example_text(name: str) -> str:
    return (ROOT / "flows" / name).read_text(encoding="utf-8")


# --- 1. compile or report with a location -----------------------------------------------------

FIELD_NAMES = sorted({name for t in NODE_TYPES.values() for name in t.fields} | set(spec.COMMON))
VOCABULARY = sorted(
    set(spec.TOP_FIELDS) | set(FIELD_NAMES) | set(spec.OPTION_FIELDS) | set(spec.RULE_CONDITIONS)
    | set(spec.DEFAULTABLE) | {"matches", "every", "shorter_than", "file", "pl", "en", "de"}
)
NODE_NAMES = ["welcome", "main_menu", "sales", "goodbye", "start", "x", "Main Menu", "ąę", "1"]
WORDS = sorted(
    set(NODE_TYPES) | set(NODE_NAMES) | set(config().departments) | set(config().schedules)
    | {"office", "nowhere", "main", "faq", "pl", "en", "EN", "vip", "account", "^9", "(", "[a-", "general"}
)
ODD_STRINGS = ["*", "#", "**", "5s", "3m", "1h", "0s", "-1s", "99999h", "xx", "", " ", "1", "0", "10",
               "yes", "no", "null", "~", "08:00-18:00", "2026-12-25", "ünïcødé", "日本語", "😀", "a\nb", "\t"]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=12),
    st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 1, 1)),
)
junk_keys = st.one_of(
    st.sampled_from(VOCABULARY),
    st.sampled_from(ODD_STRINGS),
    st.sampled_from(NODE_NAMES),
    st.text(max_size=8),
    st.integers(min_value=-5, max_value=12),
    st.booleans(),
    st.none(),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(junk_keys, inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def field_value(draw, field: spec.Field):
    """A value for one node field: mostly of the right kind, sometimes junk."""
    if draw(st.integers(0, 4)) == 0:
        return draw(junk)
    kind = field.kind
    if kind == spec.NODE:
        return draw(st.sampled_from(NODE_NAMES))
    if kind == spec.PROMPT:
        return draw(st.sampled_from(["welcome", "menu", "missing", "goodbye"]))
    if kind == spec.DURATION:
        return draw(st.one_of(st.sampled_from(["5s", "3m", "1h", "0s", "xx", "-5s", "1.5s"]), st.integers(-2, 4000), st.floats()))
    if kind == spec.KEY:
        return draw(st.one_of(st.sampled_from(["*", "#", "1", "0", "10", "x", "", "A"]), st.integers(-1, 12)))
    if kind == spec.INT:
        return draw(st.one_of(st.integers(-2, 120), st.sampled_from(["3", "x", True])))
    if kind == spec.BOOL:
        return draw(st.one_of(st.booleans(), st.sampled_from(["yes", "true", 1, 0])))
    if kind == spec.DEPARTMENT:
        return draw(st.sampled_from([*config().departments, "nope", "Sales"]))
    if kind == spec.SCHEDULE:
        return draw(st.sampled_from([*config().schedules, "night"]))
    if kind == spec.FLOW:
        return draw(st.sampled_from(["main", "faq", "gen", "nope"]))
    if kind == spec.OPTIONS:
        option = st.one_of(
            st.sampled_from(NODE_NAMES),
            st.fixed_dictionaries({"next": st.sampled_from(NODE_NAMES)},
                                  optional={"language": st.sampled_from(["pl", "en", "de", 5]),
                                            "set": st.dictionaries(st.sampled_from(["topic", "x", "1"]), scalars, max_size=2),
                                            "junk": scalars}),
            junk,
        )
        return draw(st.dictionaries(st.one_of(st.sampled_from(["1", "2", "0", "*", "#", "10", "x"]), st.integers(0, 12)), option, max_size=5))
    if kind == spec.RULES:
        rule = st.fixed_dictionaries(
            {"next": st.sampled_from(NODE_NAMES)},
            optional={"segment": st.sampled_from(["vip", "nope", 3]), "var": st.sampled_from(["account", "x", ""]),
                      "matches": st.sampled_from(["^9", "(", "[a-", ".*", 5]), "caller": st.sampled_from(["^\\+48", "(", ""]),
                      "language": st.sampled_from(["pl", "en", "de"])},
        )
        return draw(st.lists(st.one_of(rule, junk), max_size=3))
    if kind == spec.SCALE:
        return draw(st.one_of(st.lists(st.integers(-2, 12), max_size=3), st.sampled_from(["0-10", None])))
    if kind == spec.SAMPLE:
        return draw(st.one_of(st.fixed_dictionaries({}, optional={"every": st.integers(-1, 20), "shorter_than": st.sampled_from(["2m", "x", 30, -1])}), junk))
    return draw(st.one_of(st.sampled_from(WORDS), st.text(max_size=10)))


@st.composite
def nodes(draw):
    result = {}
    for name in draw(st.lists(st.sampled_from(NODE_NAMES), max_size=6, unique=True)):
        if draw(st.integers(0, 9)) == 0:
            result[name] = draw(junk)
            continue
        type_name = draw(st.one_of(st.sampled_from(sorted(NODE_TYPES)), st.sampled_from(["Menu", "playy", "", None, 3])))
        node = {"type": type_name}
        fields = NODE_TYPES[type_name].fields if type_name in NODE_TYPES else {}
        for fname in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=9, unique=True)):
            fspec = fields.get(fname)
            node[fname] = draw(field_value(fspec)) if fspec else draw(scalars)
        if draw(st.booleans()):
            node[draw(junk_keys)] = draw(junk)
        result[name] = node
    return result


@st.composite
def wild_flow_data(draw):
    """A flow-shaped mapping: the real vocabulary, with values right, wrong or missing."""
    prompts = draw(st.dictionaries(
        st.sampled_from(["welcome", "menu", "goodbye", "x"]),
        st.one_of(st.fixed_dictionaries({}, optional={"pl": st.text(max_size=10), "en": st.sampled_from(ODD_STRINGS),
                                                      "file": st.sampled_from(["prompts/x.wav", "", 5]), "de": scalars}),
                  junk),
        max_size=4,
    ))
    data = {
        "flow": draw(st.one_of(st.sampled_from(["gen", "main", "faq", "Bad Id", ""]), scalars)),
        "languages": draw(st.one_of(st.lists(st.sampled_from(["pl", "en", "de", "EN", "xx-YY", "", 1]), max_size=3), scalars)),
        "start": draw(st.one_of(st.sampled_from(NODE_NAMES), scalars)),
        "prompts": prompts,
        "nodes": draw(nodes()),
        "defaults": draw(st.one_of(st.fixed_dictionaries({}, optional={k: field_value(NODE_TYPES["menu"].fields[k]) for k in spec.DEFAULTABLE}), junk)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(data)), max_size=3, unique=True)):
        del data[key]
    if draw(st.booleans()):
        data[draw(junk_keys)] = draw(junk)
    return data if draw(st.integers(0, 19)) else draw(junk)


PROMPT_NAMES = ["welcome", "menu", "invalid", "no_input", "goodbye"]


def _required(draw, type_name: str, names: list[str]) -> dict:
    """The required fields of a node of `type_name`, with right values."""
    node = lambda: draw(st.sampled_from(names))  # noqa: E731
    prompt = lambda: draw(st.sampled_from(PROMPT_NAMES))  # noqa: E731
    department = lambda: draw(st.sampled_from(sorted(config().departments)))  # noqa: E731
    if type_name == "play":
        return {"prompt": prompt(), "next": node()}
    if type_name == "menu":
        keys_ = draw(st.lists(st.sampled_from(list("0123456789#")), min_size=1, max_size=5, unique=True))
        options = {k: (node() if draw(st.booleans()) else {"next": node(), **({"language": draw(st.sampled_from(["pl", "en"]))} if draw(st.booleans()) else {}),
                                                           **({"set": {"topic": draw(st.sampled_from(["a", "b"]))}} if draw(st.booleans()) else {})})
                   for k in keys_}
        return {"prompt": prompt(), "options": options, "on_fail": node()}
    if type_name == "input":
        return {"prompt": prompt(), "save_as": "account", "next": node(), "on_fail": node()}
    if type_name == "hours":
        return {"schedule": "office", "open": node(), "closed": node()}
    if type_name == "route":
        rule = draw(st.sampled_from([{"segment": "vip"}, {"var": "account", "matches": "^9"}, {"caller": "^\\+48"}, {"language": "en"}]))
        return {"when": [{**rule, "next": node()}], "otherwise": node()}
    if type_name == "transfer":
        return {"department": department()}
    if type_name == "callback":
        return {"prompt": prompt(), "department": department(), "next": node()}
    if type_name == "voicemail":
        return {"mailbox": "general"}
    if type_name == "survey":
        return {"prompt": prompt(), "next": node()}
    if type_name == "goto":
        return {"flow": draw(st.sampled_from(["gen", "main"]))}
    return {}


@st.composite
def near_valid_flow_data(draw):
    """A flow that is right or nearly so, then damaged in a few places: reaches the deep checks."""
    names = draw(st.lists(st.sampled_from(NODE_NAMES[:6] + ["n1", "n2", "n3", "n4"]), min_size=1, max_size=8, unique=True))
    nodes_ = {}
    for name in names:
        type_name = draw(st.sampled_from(sorted(NODE_TYPES)))
        node = {"type": type_name, **_required(draw, type_name, names)}
        fields = NODE_TYPES[type_name].fields
        for fname in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
            if fname not in node:
                kind = fields[fname].kind
                node[fname] = draw(st.sampled_from(names)) if kind == spec.NODE else (
                    draw(st.sampled_from(PROMPT_NAMES)) if kind == spec.PROMPT else draw(field_value(fields[fname])))
        nodes_[name] = node
    languages = draw(st.sampled_from([["pl", "en"], ["pl"], ["en", "pl"]]))
    data = {
        "flow": "gen",
        "languages": languages,
        "start": names[0],
        "prompts": {p: {lang: f"{p} {lang}" for lang in languages} for p in PROMPT_NAMES},
        "nodes": nodes_,
    }
    # damage: node fields replaced by junk, dropped or added; then maybe a top-level part
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(names))
        node = nodes_[name]
        key = draw(st.one_of(st.sampled_from(list(node) or ["type"]), st.sampled_from(FIELD_NAMES), junk_keys))
        action = draw(st.sampled_from(["junk", "drop", "scalar"]))
        if action == "drop":
            node.pop(key, None)
        else:
            node[key] = draw(junk if action == "junk" else scalars)
    if draw(st.integers(0, 5)) == 0:
        key = draw(st.sampled_from(list(spec.TOP_FIELDS)))
        if draw(st.booleans()):
            data.pop(key, None)
        else:
            data[key] = draw(junk)
    return data


flow_data = lambda: st.one_of(near_valid_flow_data(), wild_flow_data())  # noqa: E731


MUTATION_CHARS = list(":-# \n\t\"'*&!|>%@`,?{}[]~=\\019aZ") + ["ą", "日", "\ufeff", "\x00", "\x07", "\u2028", "\r", "---\n", "...\n", "<<: *a\n", "&a "]


@st.composite
def mutated_text(draw):
    """An example flow with a few characters or lines deleted, inserted or replaced."""
    text = example_text(draw(st.sampled_from(["main.yaml", "faq.yaml"])))
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "drop_line", "dup_line", "indent"]))
        lines = text.splitlines(keepends=True)
        if op in ("drop_line", "dup_line", "indent") and lines:
            i = draw(st.integers(0, len(lines) - 1))
            if op == "drop_line":
                del lines[i]
            elif op == "dup_line":
                lines.insert(i, lines[i])
            else:
                lines[i] = draw(st.sampled_from([" ", "  ", "\t", ""])) + lines[i].lstrip(" ")[: draw(st.integers(0, 200))] + ("\n" if not lines[i].endswith("\n") else "")
            text = "".join(lines)
            continue
        pos = draw(st.integers(0, max(0, len(text) - 1)))
        piece = draw(st.one_of(st.sampled_from(MUTATION_CHARS), st.text(max_size=3)))
        if op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 30)):]
        elif op == "insert":
            text = text[:pos] + piece + text[pos:]
        else:
            text = text[:pos] + piece + text[pos + 1:]
    return text


def assert_compiles_or_locates(text: str) -> None:
    try:
        flow = compile_text(text, FILE, config())
    except FlowError as exc:
        assert exc.diagnostics, "FlowError without a finding"
        for d in exc.diagnostics:
            assert d.location.file == FILE, str(d)
            assert isinstance(d.location.line, int) and d.location.line >= 1, str(d)
            assert isinstance(d.location.column, int) and d.location.column >= 1, str(d)
            assert isinstance(d.message, str) and d.message.strip(), repr(d)
        return
    assert isinstance(flow, Flow)


@SETTINGS
@given(flow_data())
@example({"flow": "gen", "languages": ["pl"], "start": "n", "prompts": {}, "nodes": {"n": {"type": []}}})  # was a TypeError
def test_generated_flow_data_compiles_or_errs_with_location(data):
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    assert_compiles_or_locates(text)


@SETTINGS
@given(st.one_of(mutated_text(), st.text(max_size=200), st.lists(st.sampled_from(MUTATION_CHARS + ["flow", "nodes", "type", "menu", "main"]), max_size=40).map("".join)))
def test_random_and_mutated_text_compiles_or_errs_with_location(text):
    assert_compiles_or_locates(text)


def test_example_flows_compile_as_text():
    for name in ("main.yaml", "faq.yaml"):
        assert isinstance(compile_text(example_text(name), FILE, config()), Flow)


# --- 2. every simulated call ends ---------------------------------------------------------------

ACCOUNT_DIGITS = st.text(alphabet="0123456789", min_size=6, max_size=10)
VIP_CALLER = "+48 22 555 01 01"


@functools.cache
def engine() -> Engine:
    flows, cfg = load_flows([ROOT / "flows"], ROOT / "config.yaml")
    return Engine(flows, cfg)


tokens = st.one_of(
    st.sampled_from(list("0123456789*#") + ["-", "hangup", "123456#", "90000001#", "10", "12", "1#", "#", "99999999999#"]),
    ACCOUNT_DIGITS.map(lambda d: d + "#"),
    st.text(alphabet="0123456789*#", min_size=1, max_size=12),
)
office_hours = st.builds(
    lambda day, minute: dt.datetime(2026, 1, 5, 8) + dt.timedelta(days=day, minutes=minute),
    st.integers(0, 51).map(lambda week: week * 7) | st.integers(0, 360),  # Mondays, or any day
    st.integers(0, 10 * 60 - 1),
)
times = st.one_of(
    office_hours,
    st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 31, 23, 59)),
    st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 31, 23, 59),
                 timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-11))])),
    st.sampled_from([dt.datetime(2026, 12, 25, 10), dt.datetime(2026, 11, 11, 11), dt.datetime(2026, 1, 1, 9),
                     dt.datetime(2026, 12, 31, 12), dt.datetime(2026, 11, 24, 10), dt.datetime(2026, 11, 28, 12, 59),
                     dt.datetime(2026, 11, 29, 12), dt.datetime(2026, 11, 24, 3), dt.datetime(2026, 11, 24, 17, 59, 59)]),
)
# journeys that reach the deeper branches (language, main menu choice, ...), then anything
JOURNEYS = [[], ["1"], ["2"], ["1", "1"], ["2", "2"], ["1", "3"], ["1", "4"], ["1", "4", "1"], ["1", "4", "2", "1"],
            ["1", "4", "3", "0"], ["1", "4", "0"], ["1", "0"], ["-", "-"], ["1", "*"], ["1", "3", "-", "-"]]
key_scripts = st.one_of(
    st.lists(tokens, max_size=25),
    st.tuples(st.sampled_from(JOURNEYS), st.lists(tokens, max_size=12)).map(lambda p: p[0] + p[1]),
)
callers = st.one_of(
    st.sampled_from([VIP_CALLER, "+48221234567", "", "anonymous", "+44 20 7946 0958", "0601200300", "123"]),
    st.text(alphabet=st.sampled_from(list("+0123456789 ()-\"'\n\\x;ą")), max_size=20),
)
queue_results = st.lists(
    st.one_of(
        st.sampled_from(["answered", "timeout", "abandoned"]),
        st.builds(
            QueueScript,
            status=st.sampled_from(["answered", "timeout", "abandoned"]),
            wait=st.one_of(st.none(), st.floats(min_value=0, max_value=900)),
            talk=st.floats(min_value=0, max_value=3600),
        ),
    ),
    max_size=4,
)


@SETTINGS
@given(
    keys=key_scripts,
    at=times,
    caller=callers,
    queue=queue_results,
    barge_in=st.booleans(),
)
def test_every_simulated_call_ends_with_an_outcome(keys, at, caller, queue, barge_in):
    sim = simulate(engine(), "main", keys=keys, caller=caller, at=at, queue=queue, barge_in=barge_in)
    call, events = sim.call, sim.call.events
    assert events, "no events"
    assert events[-1].type == ev.OUTCOME, [e.type for e in events]
    assert isinstance(call.outcome, ev.Outcome)
    assert call.outcome != ev.Outcome.FAILED, [e.to_dict() for e in events if e.type == ev.ERROR]
    assert not [e for e in events if e.type == ev.ERROR]
    assert sum(e.type == ev.NODE_ENTERED for e in events) <= MAX_NODES_ENTERED
    times_seen = [e.t for e in events]
    assert times_seen == sorted(times_seen), times_seen
    # the account number (support_account is sensitive) never reaches an event
    # (in the texts the events carry: a time such as 1.9999999999998863 holds digits too)
    texts = [text for e in events for text in _texts(e.to_dict())]
    for token in keys:
        digits = token.split("#")[0]
        if len(digits) >= 6 and digits.isdigit() and digits not in caller:
            assert not any(digits in text for text in texts), (digits, [text for text in texts if digits in text])


def _texts(value):
    """Every string and whole number inside an event's dict form, keys included (floats are
    times and durations)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, int) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)


@SETTINGS
@given(account=ACCOUNT_DIGITS, barge_in=st.booleans(), terminated=st.booleans(),
       at=st.sampled_from([dt.datetime(2026, 11, 24, 10), dt.datetime(2026, 11, 28, 10)]))
def test_account_digits_are_masked_in_support(account, barge_in, terminated, at):
    """The sensitive input surely gets the digits (language 1, support 3): none leak."""
    keys = ["1", "3", account + ("#" if terminated else ""), "-", "-"]
    sim = simulate(engine(), "main", keys=keys, caller="+48221234567", at=at, queue=["answered"], barge_in=barge_in)
    events = sim.call.events
    assert any(e.type == ev.INPUT and e.data.get("sensitive") for e in events), [e.to_dict() for e in events]
    assert sim.call.outcome == ev.Outcome.ANSWERED
    assert not any(account in e.to_json() for e in events)
    assert not any(account in str(e.data) for e in events)


@pytest.mark.parametrize("caller", [VIP_CALLER, "+48 601 200 300"])
def test_vip_caller_reaches_premium_desk(caller):
    sim = simulate(engine(), "main", keys=[], caller=caller, at=dt.datetime(2026, 11, 24, 10), queue=["answered"])
    assert sim.call.department == "premium"
