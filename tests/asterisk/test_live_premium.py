"""Premium callers on real calls: the vip segment of flows/main.yaml from a CSV file that
`ivr serve` reads again when it changes, and from an HTTP lookup that may fail.

CSV (`ivr serve` as a process, see live_support.serve_process): the installation's vip
segment is a CSV file of the test's own folder.
1. A caller whose number is in the file reaches the premium desk.
2. The file is rewritten while the server runs: one number out, one in. The log shows
   the reload; the next calls from the added number (a SIPp caller) and from the removed
   one (AMI) go premium and the normal path (the language menu) respectively.
3. The file is broken (bytes that are no UTF-8) and stays so through several watch
   ticks: the reload is refused once in the log, and a caller whose number the file held
   before (and not after) goes premium still.

HTTP (the runtime in a thread, see live_support.serving): the vip segment is a lookup
of a CRM on 127.0.0.1 (tests/crm_server.py) with a 500 ms time-out, asked in phases:
- answers: a member goes premium, a number the CRM does not know (404) the normal path;
- times out (the CRM answers after 3 s): two callers, each in the language menu no more
  than the time-out later than the 404 caller got there; the log warns once;
- garbage (200 with an HTML page): two callers, the normal path, nothing more logged
  (the same failure spell);
- answers again: a member goes premium; the log says the lookup is back, once;
- refuses connections (the CRM is gone): two callers, the normal path; the log warns once.
Each call's route event records the lookup's answer, how long it took, and why it failed.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest
import sqlalchemy as sa
import yaml

from crm_server import CrmServer
from ivr.prompts.audio import inspect
from ivr.settings.config import load_config
from ivr.store.db import create_db_engine
from ivr.store.models import Call, CallEvent
from ivr.testbed.ami_session import AmiSession
from ivr.testbed.server import REPO
from .live_support import Caller, live_installation, serve_process, serving, wait_for_outcomes
from .testbed_support import IVR

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk

PREMIUM_PATH = ["welcome", "open_check", "vip_check", "premium_greeting", "premium_desk"]
NORMAL_PATH = ["welcome", "open_check", "vip_check", "language"]
TIMEOUT = 0.5  # the lookup's time-out in the test's config.yaml
SLOW_CRM = 3.0  # how long the slow CRM sleeps before it answers
SLACK = 1.0  # a loaded machine's delay on top of the time-out; TIMEOUT + SLACK stays well under SLOW_CRM
NUMBERS = {
    # CSV
    "kept": "48600700001", "removed": "48600700002", "added": "48600700003", "later": "48600700005",
    # HTTP
    "member": "48600800001", "stranger": "48600800002", "slow-1": "48600800003", "slow-2": "48600800004",
    "garbage-1": "48600800005", "garbage-2": "48600800006", "back": "48600800007",
    "refused-1": "48600800008", "refused-2": "48600800009",
}
FIRST_CSV = "number,customer\n# premium customers\n+48 600 700 001,Kept Ltd\n+48 600 700 002,Removed Ltd\n"
SECOND_CSV = "number,customer\n+48 600 700 001,Kept Ltd\n+48 600 700 003,Added Ltd\n+48 600 700 005,Later Ltd\n"


def _seconds(testbed: "Testbed", prompt: str) -> float:
    return inspect(testbed.prompts_dir / "pl" / "main" / f"{prompt}.wav").duration


class Records:
    """The call records of an installation's database, read as live_support.Serving reads them."""

    def __init__(self, testbed: "Testbed", config_path: Path):
        self.testbed = testbed
        self.db = create_db_engine(load_config(config_path).raw["database"])

    def calls_by_caller(self) -> dict[str, dict[str, Any]]:
        with self.db.connect() as conn:
            return {row["caller"]: dict(row) for row in conn.execute(sa.select(Call.__table__)).mappings()}

    def events(self, call_id: str) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(CallEvent.__table__).where(CallEvent.call_id == call_id)
                                .order_by(CallEvent.seq)).mappings()
            return [CallEvent(**row).to_dict() for row in rows]


def _collect(records: Any, numbers: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    rows = wait_for_outcomes(records, numbers, timeout)
    return {n: {"call": rows[n], "events": records.events(rows[n]["id"]) if isinstance(records, Records)
                else records.record(rows[n]["id"])["events"]} for n in numbers}


def _place(testbed: "Testbed", ami: AmiSession, callers: list[Caller]) -> None:
    for caller in callers:
        caller.place(testbed, ami)


def _build_prompts(testbed: "Testbed") -> None:
    built = subprocess.run([str(IVR), "--config", str(testbed.config_path), "prompts", "build"],
                           capture_output=True, text=True, cwd=REPO)
    assert built.returncode == 0, f"`ivr prompts build` failed:\n{built.stdout}{built.stderr}"


def _installation(folder: Path, testbed: "Testbed", vip: dict[str, Any]) -> Path:
    path = live_installation(folder, testbed)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["segments"] = {"vip": vip}
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (folder / "flows").symlink_to(REPO / "flows", target_is_directory=True)  # `ivr serve` reads the flows beside it
    return path


def _wait_for_log(log_path: Path, text: str, count: int, seconds: float) -> float:
    """Seconds until `text` is in the log `count` times; AssertionError with the log after `seconds`."""
    started = time.monotonic()
    while log_path.read_text(errors="replace").count(text) < count:
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{text!r} not {count} time(s) in the log of `ivr serve` after {seconds:g}s:\n"
                                 f"{log_path.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)
    return time.monotonic() - started


# --- the calls -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def csv_calls(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    _build_prompts(testbed)
    folder = tmp_path_factory.mktemp("premium-csv")
    csv_file = folder / "vip.csv"
    csv_file.write_text(FIRST_CSV, encoding="utf-8")
    config = _installation(folder, testbed, {"numbers": str(csv_file)})
    log_path = folder / "serve.log"
    premium_hold = round(_seconds(testbed, "welcome") + _seconds(testbed, "premium_welcome") + 3 - 2)
    normal_hold = round(_seconds(testbed, "welcome") + 3 - 2)
    results: dict[str, Any] = {}
    with serve_process(testbed, config, log_path), AmiSession(testbed.ami_host, testbed.ami_port) as ami:
        ami.login(testbed.ami_username, testbed.ami_secret)
        records = Records(testbed, config)
        _wait_for_log(log_path, 'segment "vip": 2 number(s)', 1, 5)
        # 1. in the file from the start
        _place(testbed, ami, [Caller("ami", NUMBERS["kept"], "Kept caller", hold=premium_hold)])
        results["before"] = _collect(records, [NUMBERS["kept"]], 60)

        # 2. the file rewritten while the server runs
        written = time.monotonic()
        csv_file.write_text(SECOND_CSV, encoding="utf-8")
        _wait_for_log(log_path, 'segment "vip": 3 number(s)', 1, 10)
        results["reload_seconds"] = time.monotonic() - written
        added = Caller("sipp", NUMBERS["added"], "Added caller", hold=premium_hold)
        _place(testbed, ami, [added, Caller("ami", NUMBERS["removed"], "Removed caller", hold=normal_hold)])
        results["after"] = _collect(records, [NUMBERS["added"], NUMBERS["removed"]], 60)
        added.finish(30)

        # 3. the file broken: the numbers before stay
        csv_file.write_bytes(b"number,customer\n+48 600 700 004,Caf\xe9 Ltd\n")
        _wait_for_log(log_path, "reload refused", 1, 10)
        time.sleep(3.5)  # three more watch ticks with the same broken file
        results["broken_log"] = log_path.read_text(errors="replace")
        # a number of the file before it broke (and not of the broken one)
        _place(testbed, ami, [Caller("ami", NUMBERS["later"], "Later caller", hold=premium_hold)])
        results["broken"] = _collect(records, [NUMBERS["later"]], 60)
    results["log"] = log_path.read_text(errors="replace")
    print(f"CSV rewritten: new numbers in force after {results['reload_seconds']:.2f} s")
    records.db.dispose()
    yield results


@pytest.fixture(scope="module")
def http_calls(testbed: "Testbed", tmp_path_factory) -> Iterator[dict[str, Any]]:
    _build_prompts(testbed)
    folder = tmp_path_factory.mktemp("premium-http")
    crm = CrmServer("json", members={NUMBERS["member"], NUMBERS["back"]}, delay=SLOW_CRM)
    premium_hold = round(_seconds(testbed, "welcome") + _seconds(testbed, "premium_welcome") + 3 - 2)
    normal_hold = round(_seconds(testbed, "welcome") + 3 - 2)
    results: dict[str, Any] = {"phases": {}}
    with crm:
        # cache: 0 so that every call asks the CRM, whatever came before
        config = _installation(folder, testbed, {"lookup": {"url": crm.url(), "timeout": "500ms", "cache": 0}})
        with serving(testbed, config) as srv, AmiSession(testbed.ami_host, testbed.ami_port) as ami:
            ami.login(testbed.ami_username, testbed.ami_secret)

            def phase(name: str, mode: str, callers: dict[str, float]) -> None:
                crm.mode = mode
                marks = len(srv.logs.records)
                _place(testbed, ami, [Caller("ami", NUMBERS[n], n, hold=hold) for n, hold in callers.items()])
                results.update(_collect(srv, [NUMBERS[n] for n in callers], 60))
                results["phases"][name] = [r for r in srv.logs.records[marks:] if r.name == "ivr.lookup"]

            phase("answers", "json", {"member": premium_hold, "stranger": normal_hold})
            phase("times out", "slow", {"slow-1": normal_hold, "slow-2": normal_hold})
            phase("garbage", "garbage", {"garbage-1": normal_hold, "garbage-2": normal_hold})
            phase("answers again", "json", {"back": premium_hold})
            crm.__exit__(None, None, None)  # gone: its port refuses connections from now on
            phase("refused", "json", {"refused-1": normal_hold, "refused-2": normal_hold})
            results["asked"] = crm.numbers_asked()
            results["all_logs"] = [r for r in srv.logs.records if r.name == "ivr.lookup"]
    # the figures, for `-s`: how long each caller waited for the lookup, and when the menu came
    for name, number in NUMBERS.items():
        if number in results:
            record = results[number]
            lookup = _route(record).get("lookups", [{}])[0]
            language = next((e["t"] for e in record["events"] if e["type"] == "node_entered" and e["node"] == "language"), None)
            print(f"{name}: lookup {lookup.get('result')} in {lookup.get('ms')} ms ({lookup.get('error', '')}); "
                  f"language menu at {language if language is None else round(language, 3)} s")
    yield results


def _path(record: dict[str, Any]) -> list[str]:
    return [e["node"] for e in record["events"] if e["type"] == "node_entered"]


def _route(record: dict[str, Any]) -> dict[str, Any]:
    [route] = [e for e in record["events"] if e["type"] == "route"]
    return route


def _entered(record: dict[str, Any], node: str) -> float:
    return next(e["t"] for e in record["events"] if e["type"] == "node_entered" and e["node"] == node)


def _premium(record: dict[str, Any]) -> None:
    call = record["call"]
    assert _path(record)[:5] == PREMIUM_PATH, _path(record)
    assert call["department"] == "premium", call
    assert _route(record)["rule"] == "segment vip"
    [transfer] = [e for e in record["events"] if e["type"] == "transfer"]
    assert (transfer["department"], transfer["priority"]) == ("premium", 10)


def _normal(record: dict[str, Any]) -> None:
    call = record["call"]
    assert _path(record) == NORMAL_PATH, _path(record)  # then the caller hung up in the language menu
    assert _route(record)["rule"] == "otherwise"
    assert (call["outcome"], call["last_node"], call["department"]) == ("abandoned", "language", None), call


# --- CSV ---------------------------------------------------------------------------------------------
def test_a_caller_in_the_csv_file_reaches_the_premium_desk(csv_calls):
    _premium(csv_calls["before"][NUMBERS["kept"]])


def test_the_rewritten_csv_file_counts_for_the_next_calls_without_a_restart(csv_calls):
    # the watch polls every second: a few seconds on a loaded machine, not a restart's or a missed change's
    assert csv_calls["reload_seconds"] < 8, csv_calls["reload_seconds"]
    _premium(csv_calls["after"][NUMBERS["added"]])  # a SIP caller, its number in the From header
    _normal(csv_calls["after"][NUMBERS["removed"]])
    log = csv_calls["log"]
    assert "changed: " in log and "vip.csv; reloading" in log, log[-3000:]
    assert log.count("flows loaded (generation") >= 2


def test_a_broken_csv_file_keeps_the_numbers_before_and_is_logged_once(csv_calls):
    log = csv_calls["broken_log"]
    refusals = [line for line in log.splitlines() if "reload refused" in line and "not UTF-8" in line]
    assert len(refusals) == 1, log[-3000:]
    assert 'the numbers of segment "vip"' in refusals[0] and "(line 2: byte 0xe9)" in refusals[0]
    assert log.count("reload refused: 1 error(s); the running flows stay") == 1
    _premium(csv_calls["broken"][NUMBERS["later"]])
    assert "Traceback" not in csv_calls["log"]  # a broken file is no crash


# --- HTTP --------------------------------------------------------------------------------------------
def _lookup(record: dict[str, Any]) -> dict[str, Any]:
    [lookup] = _route(record)["lookups"]
    assert lookup["segment"] == "vip"
    return lookup


def test_the_lookup_puts_a_member_on_the_premium_desk_and_a_stranger_on_the_normal_path(http_calls):
    member, stranger = http_calls[NUMBERS["member"]], http_calls[NUMBERS["stranger"]]
    _premium(member)
    _normal(stranger)
    assert _lookup(member)["result"] == "member" and _lookup(stranger)["result"] == "not_member"
    assert "error" not in _lookup(member) and "error" not in _lookup(stranger)
    # an answer, not a time-out: within the lookup's time-out (a loaded machine may be slow)
    assert _lookup(member)["ms"] < TIMEOUT * 1000 and _lookup(stranger)["ms"] < TIMEOUT * 1000
    assert http_calls["phases"]["answers"] == []  # answers are not logged


@pytest.mark.parametrize("names, error", [
    (("slow-1", "slow-2"), "no answer within 500 ms"),
    (("garbage-1", "garbage-2"), "the answer is no JSON"),
    (("refused-1", "refused-2"), "cannot connect: Connection refused"),
])
def test_a_failing_lookup_sends_the_caller_down_the_normal_path_without_a_stall(http_calls, names, error):
    baseline = _entered(http_calls[NUMBERS["stranger"]], "language")
    for name in names:
        record = http_calls[NUMBERS[name]]
        _normal(record)
        lookup = _lookup(record)
        assert (lookup["result"], lookup["error"]) == ("failed", error)
        waited = _route(record)["t"] - _entered(record, "vip_check")
        # the slow CRM sleeps SLOW_CRM seconds: the caller waits the time-out, with slack for a loaded
        # machine, and never the CRM's sleep
        assert waited < TIMEOUT + SLACK, waited
        assert abs(lookup["ms"] / 1000 - waited) < SLACK, (lookup, waited)
        # from the call's start to the language menu: the 404 caller's way, and the time-out at most
        assert _entered(record, "language") < baseline + TIMEOUT + SLACK, (_entered(record, "language"), baseline)
        if error.startswith("no answer"):
            assert lookup["ms"] >= TIMEOUT * 1000 - 10


def test_each_failure_spell_is_logged_once_and_its_end_once(http_calls):
    def said(phase: str) -> list[str]:
        return [r.getMessage() for r in http_calls["phases"][phase] if r.levelno >= logging.WARNING]

    [timed_out] = said("times out")
    assert timed_out.startswith('segment "vip": lookup http://127.0.0.1:') and "(no answer within 500 ms)" in timed_out
    assert said("garbage") == []  # the same spell: already said
    assert said("answers again") == ['segment "vip": lookup answers again, after 4 failed lookup(s)']
    [refused] = said("refused")
    assert "(cannot connect: Connection refused)" in refused
    assert [r.levelno for r in http_calls["all_logs"] if r.levelno >= logging.WARNING] == [logging.WARNING] * 3


def test_the_crm_was_asked_for_each_caller_by_number(http_calls):
    # the refused callers never reached it; every other caller was asked about once, as +digits
    expected = ["member", "stranger", "slow-1", "slow-2", "garbage-1", "garbage-2", "back"]
    assert sorted(http_calls["asked"]) == sorted(NUMBERS[n] for n in expected)


def test_the_member_after_the_outage_reaches_the_premium_desk(http_calls):
    record = http_calls[NUMBERS["back"]]
    _premium(record)
    assert _lookup(record)["result"] == "member"
