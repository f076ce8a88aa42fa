"""The FastAGI load generator (bench/agi_load.py): Asterisk's replies and `${...}`
substitution, an unknown command counted as a failure, and tiny real runs against the real
`ivr serve` (every call stored), the same-wire floor (exactly the commands recorded from
`ivr serve`), panoramisk's FastAGI and pyst2 (a process per call)."""

from __future__ import annotations

import asyncio
from importlib import metadata
import json
import re
import shutil
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import agi_load  # noqa: E402
from agi_load_asterisk import AsteriskCall, Behaviour, Tally, parse_args, substitute  # noqa: E402
from agi_load_run import Plan, Target, run  # noqa: E402
from agi_load_servers import start_floor, start_ivr, stored_calls, wait_stored  # noqa: E402


def call(**behaviour) -> AsteriskCall:
    return AsteriskCall(Tally(), "1764800000.7", "bench", Behaviour(recordings="/rec", date="2026-12-04", **behaviour))


# --- the command line as res_agi reads it -------------------------------------------------
@pytest.mark.parametrize("line, args", [
    ("ANSWER", ["ANSWER"]),
    ("CHANNEL STATUS", ["CHANNEL", "STATUS"]),
    ('SET VARIABLE "CHANNEL(language)" "en"', ["SET", "VARIABLE", "CHANNEL(language)", "en"]),
    ('STREAM FILE "/p/en/bench/menu" ""', ["STREAM", "FILE", "/p/en/bench/menu", ""]),
    ('EXEC "Queue" "support,c,,,"', ["EXEC", "Queue", "support,c,,,"]),
    ('SET VARIABLE "X" "a \\"quoted\\" name"', ["SET", "VARIABLE", "X", 'a "quoted" name']),
    ('SET VARIABLE "X" "back\\\\slash"', ["SET", "VARIABLE", "X", "back\\slash"]),
    ("WAIT FOR DIGIT 5000", ["WAIT", "FOR", "DIGIT", "5000"]),
])
def test_a_command_line_splits_as_res_agi_splits_it(line, args):
    assert parse_args(line) == args


# --- ${...} substitution ------------------------------------------------------------------
def test_substitution_replaces_variables_and_functions_and_blanks_unknown_ones():
    values = {"CHANNEL(state)": "Up", "CHANNEL(language)": "en", "QUEUE_PRIO": "3", "IVR_RECORDING": "/r/1.wav"}
    expression = "tok|${CHANNEL(state)}|${CHANNEL(language)}|${QUEUE_PRIO}|${IVR_RECORDING}|${NOPE}|${LEN(x)}"
    assert substitute(expression, values) == "tok|Up|en|3|/r/1.wav||"
    assert substitute("no expressions here", values) == "no expressions here"
    assert substitute("$notone {X}", values) == "$notone {X}"


def test_substitution_resolves_nested_expressions_innermost_first():
    assert substitute("${A${B}}", {"B": "1", "A1": "inner"}) == "inner"


def test_get_full_variable_answers_the_expression_with_the_calls_values():
    c = call()
    reply, delay, close = c.answer('GET FULL VARIABLE "t0k3n|${CHANNEL(state)}|${CHANNEL(language)}|${QUEUE_PRIO}|'
                                   '${IVR_RECORDING}"')
    assert reply == b"200 result=1 (t0k3n|Up|en||/rec/2026-12-04/1764800000.7.wav)\n" and delay == 0 and not close


def test_set_variable_is_seen_by_later_gets_and_unset_variables_answer_result_0():
    c = call()
    assert c.answer('GET VARIABLE "QUEUE_PRIO"')[0] == b"200 result=0\n"
    assert c.answer('SET VARIABLE "QUEUE_PRIO" "5"')[0] == b"200 result=1\n"
    assert c.answer('GET VARIABLE "QUEUE_PRIO"')[0] == b"200 result=1 (5)\n"
    assert c.answer('SET VARIABLE "CHANNEL(language)" "pl"')[0] == b"200 result=1\n"
    assert c.answer('GET FULL VARIABLE "${CHANNEL(language)}:${QUEUE_PRIO}"')[0] == b"200 result=1 (pl:5)\n"


def test_replies_and_delays_are_asteriskss():
    c = call(prompt_seconds=4.0, queue_seconds=2.0)
    assert c.answer("ANSWER") == (b"200 result=0\n", 0.0, False)
    assert c.answer("CHANNEL STATUS") == (b"200 result=6\n", 0.0, False)
    assert c.answer('WAIT FOR DIGIT "5000"') == (b"200 result=50\n", 0.0, False)  # key 2
    assert c.answer('STREAM FILE "/p/welcome" ""') == (b"200 result=0 endpos=32000\n", 4.0, False)
    # the queue's variables appear when the queue call ends, as app_queue sets them
    assert c.answer('GET VARIABLE "QUEUESTATUS"')[0] == b"200 result=0\n"
    assert c.answer('EXEC "Queue" "support,c,,,"') == (b"200 result=0\n", 2.0, False)
    assert c.answer('GET VARIABLE "QUEUESTATUS"')[0] == b"200 result=1 (CONTINUE)\n"
    assert c.answer('GET VARIABLE "QEHOLDTIME"')[0] == b"200 result=1 (2)\n"
    assert c.answer('GET VARIABLE "MEMBERNAME"')[0].startswith(b"200 result=1 (Agent ")
    assert c.answer('GET VARIABLE "ABANDONED"')[0] == b"200 result=0\n"
    assert c.answer('EXEC "Wait" "1"') == (b"200 result=0\n", 0.0, False)
    assert c.answer("HANGUP") == (b"200 result=1\n", 0.0, True)


def test_prompt_jitter_stays_within_ten_per_cent():
    behaviour = Behaviour(prompt_seconds=4.0, jitter=0.1)
    draws = [behaviour.prompt() for _ in range(500)]
    assert 3.6 <= min(draws) and max(draws) <= 4.4 and len(set(draws)) > 100


# --- failures are counted -----------------------------------------------------------------
async def _odd_server(commands: list[bytes]) -> asyncio.AbstractServer:
    async def serve(reader, writer):
        while (await reader.readline()) not in (b"\n", b""):
            pass
        for line in commands:
            writer.write(line)
            await reader.readline()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_an_unknown_command_fails_the_call_and_is_named():
    async def main():
        server = await _odd_server([b"ANSWER\n", b"FROB THE CHANNEL\n", b"HANGUP\n"])
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run(Target(port=port), Plan("burst", calls=3, concurrency=3), Behaviour())

    measured = asyncio.run(main())
    assert measured.tally.failed == 3 and measured.tally.completed == 0
    assert measured.tally.unknown_commands == {"FROB THE CHANNEL": 3}
    assert list(measured.tally.failures) == ["unknown command: FROB THE CHANNEL"]


def test_a_refused_connection_and_a_server_that_goes_quiet_fail_the_call():
    async def quiet():
        async def serve(reader, writer):
            await reader.readline()
            await asyncio.sleep(5)
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run(Target(port=port), Plan("burst", calls=2, concurrency=2, timeout=1.0), Behaviour())

    refused = asyncio.run(run(Target(port=_closed_port()), Plan("burst", calls=2, concurrency=2), Behaviour()))
    assert refused.tally.failed == 2 and list(refused.tally.failures) == ["could not connect: ConnectionRefusedError"]
    timed_out = asyncio.run(quiet())
    assert timed_out.tally.failed == 2 and "time-out" in next(iter(timed_out.tally.failures))


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


# --- real servers -------------------------------------------------------------------------
def test_ivr_serve_stores_every_call_and_the_floor_sends_exactly_its_commands(tmp_path):
    async def main():
        commands, commands_file = await agi_load.record_commands()
        ivr = await start_ivr(tmp_path / "ivr")
        try:
            seen_ivr: list[str] = []
            on_ivr = await run(Target(port=ivr.port), Plan("burst", calls=30, concurrency=10),
                               Behaviour(recordings=str(ivr.folder / "recordings")), record=seen_ivr)
            stored = await wait_stored(ivr.database, 30, deadline_seconds=30)
        finally:
            ivr.stop()
        floor = await start_floor(commands_file, tmp_path / "floor")
        try:
            seen_floor: list[str] = []
            on_floor = await run(Target(port=floor.port), Plan("burst", calls=30, concurrency=10), Behaviour(),
                                 record=seen_floor)
        finally:
            floor.stop()
        shutil.rmtree(commands_file.parent)
        # the prompts' paths name each installation's folder
        seen_ivr = [line.replace(str(ivr.folder), "<installation>") for line in seen_ivr]
        return commands, commands_file.parent, seen_ivr, on_ivr, stored, ivr.database, seen_floor, on_floor

    commands, recorded_in, seen_ivr, on_ivr, stored, database, seen_floor, on_floor = asyncio.run(main())
    assert commands[0].startswith("GET FULL VARIABLE ") and commands[-1] == "HANGUP"
    assert 'EXEC "Queue"' in " ".join(commands)
    assert on_ivr.tally.failed == 0 and on_ivr.tally.completed == 30 and on_ivr.tally.closed_without_hangup == 0
    assert len(on_ivr.tally.latencies) == 30 * len(commands)
    # ivr serve sends the recorded commands in every call (its first, a random token, aside)
    token = re.compile(r'^GET FULL VARIABLE "[0-9a-f]{16}[|"]')
    assert Counter(line for line in seen_ivr if not token.match(line)) == \
        Counter({line.replace(str(recorded_in), "<installation>"): 30 for line in commands[1:]})
    assert stored.calls == 30 and stored.outcomes == {"answered": 30}
    with sqlite3.connect(database) as db:
        ids = {row[0] for row in db.execute("SELECT id FROM calls")}
    assert len(ids) == 30 and stored_calls(database).events >= 30 * 5
    # the floor: exactly the recorded lines, token included, in every call
    assert on_floor.tally.failed == 0 and on_floor.tally.completed == 30
    assert Counter(seen_floor) == Counter({line: 30 for line in commands})


def test_a_tiny_run_of_every_server_prints_the_table_last_and_writes_json(tmp_path, capsys):
    # by its distribution: the tests' own `asterisk` folder hides pyst2's `asterisk` package here
    for peer in ("pyst2", "panoramisk"):
        try:
            metadata.version(peer)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{peer} is not installed: scripts/bootstrap.sh test installs the project's `bench` extra")
    out = tmp_path / "run.json"
    status = agi_load.main(["--mode", "burst", "--calls", "20", "--concurrency", "5", "--json", str(out)])
    assert status == 0
    printed = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out.read_text())
    rows = {row["server"]: row for row in result["rows"]}
    assert set(rows) == {"ivr", "floor", "panoramisk", "pyst2"}
    for name, row in rows.items():
        assert row["ok"], (name, row["notes"])
        assert row["failed"] == 0 and row["placed"] == 20 and row["completed"] == 20, name
        assert row["commands_per_call"] == len(result["commands"]), name
        assert row["p50_ms"] is not None and row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], name
        assert row["peak_rss_mb"] and row["peak_rss_mb"] > 5, name
    assert rows["ivr"]["stored"] == 20 and rows["ivr"]["stored_outcomes"] == {"answered": 20}
    assert rows["ivr"]["calls_per_s_vs_floor"] > 0 and "calls_per_s_vs_floor" not in rows["floor"]
    assert "per-call processes" in rows["pyst2"]["peak_rss_is"]
    # the table is last: its header, then one row per server
    assert printed[-5].split()[:3] == ["mode", "server", "calls"]
    assert [line.split()[1] for line in printed[-4:]] == ["ivr", "floor", "panoramisk", "pyst2"]
    assert all(line.split()[-1] == "ok" for line in printed[-4:])


def test_steady_leaves_the_warm_up_out_and_spike_places_every_call_at_once(tmp_path):
    commands = ['GET FULL VARIABLE "t|${CHANNEL(state)}"', "ANSWER", 'STREAM FILE "welcome" ""',
                'WAIT FOR DIGIT "5000"', 'EXEC "Queue" "support,c,,,"', 'GET VARIABLE "QUEUESTATUS"', "HANGUP"]
    listing = tmp_path / "commands.txt"
    listing.write_text("\n".join(commands) + "\n")
    behaviour = Behaviour(prompt_seconds=0.2, queue_seconds=0.1, jitter=0.1)

    async def main():
        floor = await start_floor(listing, tmp_path / "floor")
        try:
            steady = await run(Target(port=floor.port), Plan("steady", rate=40, duration=1.0, warmup=0.5), behaviour)
            spike = await run(Target(port=floor.port), Plan("spike", calls=60), behaviour)
        finally:
            floor.stop()
        return steady, spike

    steady, spike = asyncio.run(main())
    assert steady.tally.placed == 40 and steady.tally.completed == 40 and steady.tally.failed == 0
    assert len(steady.tally.latencies) == 20 * len(commands)  # calls placed after 0.5 s only
    # the prompt and queue are held back, and not part of the latency (else 2 in 7 would take >= 0.09 s)
    assert steady.wall >= 0.975 + 0.18 + 0.09
    assert sum(1 for t in steady.tally.latencies if t >= 0.09) < 0.15 * len(steady.tally.latencies)
    assert spike.tally.completed == 60 and spike.tally.failed == 0 and len(spike.tally.latencies) == 60 * len(commands)
    assert spike.wall < 1.5  # all at once: about one call's length, not sixty


def test_a_call_shorter_than_the_recorded_one_fails():
    async def main():
        server = await _odd_server([b"ANSWER\n", b"HANGUP\n"])
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run(Target(port=port), Plan("burst", calls=2, concurrency=2), Behaviour(), expected_commands=3)

    measured = asyncio.run(main())
    assert measured.tally.failed == 2
    assert list(measured.tally.failures) == ["the call ended after 2 commands, not the 3 of the recorded call"]
