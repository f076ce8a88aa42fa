"""`ivr serve`'s health and Prometheus metrics, read over real HTTP from a real runtime:
calls from a fake Asterisk through the FastAGI server and the call-records writer (SQLite),
then /metrics parsed with prometheus-client's parser, each figure against what the test
placed: calls started and ended by outcome, every AGI command's round trip (counted against
the command lines the fake Asterisk received), the writer's queue, pending, spool and
failures (a database that cannot be reached), AMI's connection and reconnects (a fake AMI
that drops its connection), the flows' generation and failed reloads; /health/ready as a
balancer sees it, and who may read /metrics."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "channels"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "asterisk_ami"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from agi_load_servers import free_port, ivr_command  # noqa: E402
from fake_ami import FakeAmi  # noqa: E402
from fake_asterisk import Caller, environment, place_call  # noqa: E402
from test_serve import _installation  # noqa: E402
from ivr.asterisk.ami import AmiClient  # noqa: E402
from ivr.channels.agi_timing import BOUNDS  # noqa: E402
from ivr.events import Outcome  # noqa: E402
from ivr.live.metrics import parse_exposition  # noqa: E402
from ivr.live.serve import AmiPart, Runtime, build_runtime  # noqa: E402
from ivr.live.reload import FlowReloader  # noqa: E402
from ivr.metrics_access import may_read_metrics  # noqa: E402

TO_SUPPORT = ["1", "3", "9", "0", "0", "1", "2", "3", "4", "5", "#"]  # Polish, support, an account, the queue


async def http_get(port: int, path: str, *, method: str = "GET", headers: str = "") -> tuple[int, str, str]:
    """(status, headers, body) of one request to 127.0.0.1:port, as a balancer sends it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: engine\r\n{headers}Connection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split(" ")[1]), head, body


async def scrape(runtime: Runtime) -> dict:
    status, head, body = await http_get(runtime.health.port, "/metrics")
    assert status == 200, body
    assert "text/plain" in head and "version=" in head
    return parse_exposition(body)


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def verbs(lines: list[bytes]) -> Counter:
    """The commands among the lines the fake Asterisk received, as the channel names them."""
    return Counter(line.decode().split('"', 1)[0].strip() for line in lines)


def test_calls_by_outcome_and_every_agi_round_trip_are_counted(tmp_path):
    root = _installation(tmp_path)
    runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, ami=False, metrics_port=0)
    received = Counter()

    async def main():
        await runtime.start()
        try:
            before = await scrape(runtime)
            calls = [(Caller(keys=list(TO_SUPPORT)), environment("1700000300.1")),
                     (Caller(keys=list(TO_SUPPORT)), environment("1700000300.2")),
                     (Caller(keys=["hangup"]), environment("1700000300.3")),  # gone at the first menu
                     (Caller(), environment("1700000300.4", script="nosuchflow"))]  # the fallback queue
            for caller, env in calls:
                lines = await place_call(runtime.server.port, caller, env)
                received.update(verbs(lines))
                received["GET FULL VARIABLE"] -= 1  # the server's first command, sent before the call runs
            writer = runtime.extras[0].writer
            assert await asyncio.get_running_loop().run_in_executor(None, writer.flush)
            return before, await scrape(runtime), writer.stats
        finally:
            await runtime.close()

    before, after, stats = asyncio.run(main())
    assert value(before, "ivr_calls_started_total") == 0 and value(before, "ivr_ready") == 1
    assert value(after, "ivr_calls_started_total") == 4
    assert value(after, "ivr_calls_in_progress") == 0
    ended = {o.value: value(after, "ivr_calls_ended_total", outcome=o.value) for o in Outcome}
    assert ended == {**{o.value: 0 for o in Outcome}, "answered": 2, "abandoned": 1, "failed": 1}

    # every command the channel sent is one observation of its verb, in its +Inf bucket
    observed = {verb: value(after, "ivr_agi_command_seconds_count", command=verb) for verb in received if received[verb]}
    assert observed == {verb: n for verb, n in received.items() if n}
    assert {"STREAM FILE", "WAIT FOR DIGIT", "EXEC", "GET FULL VARIABLE"} <= set(observed)
    for verb, count in observed.items():
        assert value(after, "ivr_agi_command_seconds_bucket", command=verb, le="+Inf") == count
        assert value(after, "ivr_agi_command_seconds_bucket", command=verb, le=repr(BOUNDS[-1])) == count
        assert 0 < value(after, "ivr_agi_command_seconds_sum", command=verb) < 10 * count

    # the writer's figures, read from its stats when scraped
    assert value(after, "ivr_writer_queue_depth") == 0 and value(after, "ivr_writer_pending") == 0
    assert value(after, "ivr_writer_spooled") == 0 and value(after, "ivr_writer_failures_total") == 0
    assert value(after, "ivr_writer_written_total") == stats.written > 0
    assert value(after, "ivr_writer_healthy") == 1
    assert value(after, "ivr_flows_generation") == 1 and value(after, "ivr_flows_reload_failures_total") == 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_a_database_that_cannot_be_reached_shows_as_writer_failures_and_the_spool(tmp_path):
    root = _installation(tmp_path)
    config = root / "config.yaml"
    # nothing listens on port 9 (discard): the connection is refused at once, every time
    config.write_text(config.read_text().replace("database: sqlite:///ivr.db",
                                                 "database: postgresql+psycopg://ivr@127.0.0.1:9/ivr"))
    runtime = build_runtime([root / "flows"], config, port=0, ami=False, metrics_port=0)

    async def main():
        await runtime.start()
        try:
            await place_call(runtime.server.port, Caller(keys=list(TO_SUPPORT)), environment("1700000301.1"))
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                samples = await scrape(runtime)
                if value(samples, "ivr_writer_spooled") > 0 or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.2)
            return samples, await http_get(runtime.health.port, "/health/ready")
        finally:
            await runtime.close()

    samples, (status, _, body) = asyncio.run(main())
    assert value(samples, "ivr_calls_ended_total", outcome="answered") == 1
    assert value(samples, "ivr_writer_failures_total") >= 1
    assert value(samples, "ivr_writer_healthy") == 0
    assert value(samples, "ivr_writer_spooled") > 0  # nothing lost: on disk until the database is back
    assert value(samples, "ivr_writer_written_total") == 0
    # the engine takes calls all the same: ready, and the body says why the records wait
    assert status == 200 and "the database is failing" in body


def test_ami_connected_and_its_reconnects(tmp_path):
    root = _installation(tmp_path)

    async def main():
        fake = FakeAmi()
        await fake.start()
        runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, ami=False, store=False, metrics_port=0)
        client = AmiClient("127.0.0.1", fake.port, fake.username, fake.secret, backoff_base=0.02, backoff_cap=0.1)
        part = AmiPart(client)
        runtime.extras.append(part)
        runtime.manager = part
        await runtime.start()
        try:
            await _until(lambda: client.connected)
            first = await scrape(runtime)
            fake.drop()  # Asterisk restarts: the connection is lost, the client logs in again
            await _until(lambda: client.connections == 2 and client.connected)
            again = await scrape(runtime)
            await fake.stop_listening()
            fake.drop()
            await _until(lambda: not client.connected)
            down = await scrape(runtime)
            ready = await http_get(runtime.health.port, "/health/ready")
            return first, again, down, ready
        finally:
            await runtime.close()
            await fake.close()

    first, again, down, (status, _, body) = asyncio.run(main())
    assert (value(first, "ivr_ami_connected"), value(first, "ivr_ami_reconnects_total")) == (1, 0)
    assert (value(again, "ivr_ami_connected"), value(again, "ivr_ami_reconnects_total")) == (1, 1)
    assert value(down, "ivr_ami_connected") == 0
    assert "ivr_writer_queue_depth" not in {name for name, _ in down}  # no writer: no writer figures
    assert status == 200 and "AMI not connected" in body


def test_ami_events_read_and_unused(tmp_path):
    # an AMI user without the event filter: what the engine parses for nothing shows
    root = _installation(tmp_path)

    async def main():
        fake = FakeAmi()
        await fake.start()
        runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, ami=False, store=False, metrics_port=0)
        client = AmiClient("127.0.0.1", fake.port, fake.username, fake.secret)
        part = AmiPart(client)
        runtime.extras.append(part)
        runtime.manager = part
        await runtime.start()
        try:
            await _until(lambda: client.connected)
            before = await scrape(runtime)
            fake.push("Newchannel", Channel="PJSIP/sipp-00000001", Uniqueid="1700000000.5")
            fake.push("QueueCallerJoin", Queue="sales", Uniqueid="1700000000.5", Position="1")
            await _until(lambda: client.events_read == 1)
            return before, await scrape(runtime)
        finally:
            await runtime.close()
            await fake.close()

    before, after = asyncio.run(main())
    assert value(before, "ivr_ami_events_total") == 0
    assert value(after, "ivr_ami_events_total") == 1
    assert value(after, "ivr_ami_events_unused_total") - value(before, "ivr_ami_events_unused_total") == 1


def test_reload_generation_and_failed_reloads(tmp_path):
    root = _installation(tmp_path)
    runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, ami=False, store=False, metrics_port=0)
    main_flow = root / "flows" / "main.yaml"
    good = main_flow.read_text()

    async def main():
        await runtime.start()
        try:
            main_flow.write_text(good + "\n  broken: [\n")
            assert runtime.reloader.reload() is False
            broken = await scrape(runtime)
            main_flow.write_text(good)
            assert runtime.reloader.reload() is True
            return broken, await scrape(runtime)
        finally:
            await runtime.close()

    broken, fixed = asyncio.run(main())
    assert (value(broken, "ivr_flows_generation"), value(broken, "ivr_flows_reload_failures_total")) == (1, 1)
    assert (value(fixed, "ivr_flows_generation"), value(fixed, "ivr_flows_reload_failures_total")) == (2, 1)


def test_ready_says_why_not_before_the_start_and_without_flows(tmp_path):
    from ivr.live.metrics import ServeMetrics

    root = _installation(tmp_path)
    reloader = FlowReloader([root / "flows"], root / "config.yaml")
    runtime = Runtime(reloader)
    assert ServeMetrics(runtime).ready() == (False, "no flows are loaded")
    reloader.load()
    assert ServeMetrics(runtime).ready() == (False, "starting: the FastAGI server is not listening yet")


def test_the_paths_as_a_balancer_and_a_stranger_ask_them(tmp_path):
    root = _installation(tmp_path)
    runtime = build_runtime([root / "flows"], root / "config.yaml", port=0, ami=False, store=False, metrics_port=0)

    async def main():
        await runtime.start()
        try:
            port = runtime.health.port
            return {
                "live": await http_get(port, "/health/live"),
                "ready": await http_get(port, "/health/ready?from=haproxy"),
                "head": await http_get(port, "/health/ready", method="HEAD"),
                "post": await http_get(port, "/metrics", method="POST"),
                "other": await http_get(port, "/admin"),
                "junk": await _raw(port, b"\x16\x03\x01 not http\r\n\r\n"),
                "long": await _raw(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000 + b"\r\n\r\n"),
                "after": await http_get(port, "/health/live"),
            }
        finally:
            await runtime.close()

    got = asyncio.run(main())
    assert got["live"][0] == 200 and got["live"][2] == "live\n"
    status, head, body = got["ready"]
    assert status == 200 and body.startswith("ready: taking calls on 127.0.0.1:")
    assert "flows generation 1, 0 calls in progress" in body and "Cache-Control: no-store" in head
    assert got["head"][0] == 200 and got["head"][2] == ""
    assert got["post"][0] == 405 and got["other"][0] == 404 and "/health/ready" in got["other"][2]
    assert got["junk"].startswith(b"HTTP/1.1 400")
    assert got["long"] == b""  # a head over 8 kB: closed, nothing read into memory past it
    assert got["after"][0] == 200


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def test_metrics_are_for_this_host_or_the_token_holder(monkeypatch, tmp_path):
    from ivr.live.health import HealthServer
    from ivr.live.metrics import ServeMetrics

    stranger = ("203.0.113.7", 40000)
    request = b"GET /metrics HTTP/1.1\r\nHost: engine\r\n%s\r\n"
    root = _installation(tmp_path)
    reloader = FlowReloader([root / "flows"], root / "config.yaml")
    reloader.load()
    monkeypatch.delenv("IVR_METRICS_TOKEN", raising=False)
    closed = HealthServer(ServeMetrics(Runtime(reloader)))
    assert closed._answer(request % b"", stranger)[0] == 403
    assert closed._answer(request % b"Authorization: Bearer \r\n", stranger)[0] == 403
    assert closed._answer(request % b"", ("127.0.0.1", 1))[0] == 200
    assert closed._answer(request % b"", ("::ffff:127.0.0.1", 1, 0, 0))[0] == 200
    assert closed._answer(b"GET /health/ready HTTP/1.1\r\n\r\n", stranger)[0] == 503  # open to all; not started
    monkeypatch.setenv("IVR_METRICS_TOKEN", "s3cret-token")
    opened = HealthServer(ServeMetrics(Runtime(reloader)))
    assert opened._answer(request % b"Authorization: Bearer s3cret-token\r\n", stranger)[0] == 200
    assert opened._answer(request % b"authorization: bearer s3cret-token\r\n", stranger)[0] == 200
    assert opened._answer(request % b"Authorization: Bearer s3cret-tokeN\r\n", stranger)[0] == 403
    assert opened._answer(request % b"Authorization: Basic s3cret-token\r\n", stranger)[0] == 403


@pytest.mark.parametrize("address, header, token, allowed", [
    ("127.0.0.1", None, None, True),
    ("127.8.9.10", None, None, True),
    ("::1", None, None, True),
    ("::ffff:127.0.0.1", None, None, True),
    ("fe80::1%eth0", None, None, False),
    ("10.0.0.5", None, None, False),
    ("10.0.0.5", "Bearer x", None, False),  # no token set: nobody else, whatever they send
    ("10.0.0.5", "Bearer x", "x", True),
    ("10.0.0.5", "Bearer  x ", "x", True),
    ("10.0.0.5", "Bearer y", "x", False),
    ("10.0.0.5", "x", "x", False),
    (None, None, None, False),
    ("not an address", None, None, False),
])
def test_who_may_read_metrics(address, header, token, allowed):
    assert may_read_metrics(address, header, token) is allowed


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_ready_is_false_through_the_sigterm_grace_while_a_call_finishes(tmp_path):
    """`ivr serve` as a process: a call waits in the queue, SIGTERM comes; from then on
    /health/ready answers 503 with the reason (a balancer sends no new call), /health/live
    200, the call finishes within the grace period, and the process exits 0."""
    root = _installation(tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(ivr_command() + ["--config", str(root / "config.yaml"), "serve", "--port", str(port),
                                                    "--metrics-port", "0", "--grace", "8"],
                                   cwd=root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not re.search(r"FastAGI listening", log.read_text(errors="replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`ivr serve` did not start (exit {process.poll()}):\n{log.read_text()}")
            time.sleep(0.1)
        said = re.findall(r"health and metrics on http://127\.0\.0\.1:(\d+)/health/live, "
                          r"http://127\.0\.0\.1:\1/health/ready, http://127\.0\.0\.1:\1/metrics",
                          log.read_text())
        assert len(said) == 1, log.read_text()
        health = int(said[0])

        async def main():
            queued = asyncio.Event()

            def in_queue(line: str):
                if line.startswith('EXEC "Queue"'):
                    queued.set()
                return None

            caller = Caller(keys=list(TO_SUPPORT), queue_delay=3.0, special=[in_queue])
            call = asyncio.create_task(place_call(port, caller, environment("1700000302.1")))
            await asyncio.wait_for(queued.wait(), 30)
            before = await http_get(health, "/health/ready")
            signalled = time.monotonic()
            os.kill(process.pid, signal.SIGTERM)
            while (during := await http_get(health, "/health/ready"))[0] == 200:
                assert time.monotonic() - signalled < 5, "still ready 5 s after SIGTERM"
                await asyncio.sleep(0.01)
            print(f"\n/health/ready said 503 {1000 * (time.monotonic() - signalled):.1f} ms after SIGTERM")
            live = await http_get(health, "/health/live")
            samples = parse_exposition((await http_get(health, "/metrics"))[2])
            await asyncio.wait_for(call, 30)
            return before, during, live, samples

        before, during, live, samples = asyncio.run(main())
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert before[0] == 200 and "1 call in progress" in before[2]
    assert during[0] == 503
    assert during[2] == ("not ready: stopping (ivr serve stopped (SIGTERM)): no new calls; 1 call in progress "
                         "has up to 8 s to finish\n")
    assert live[0] == 200
    assert value(samples, "ivr_ready") == 0 and value(samples, "ivr_calls_in_progress") == 1
    text = log.read_text()
    assert "stopped: 1 call in progress, 1 finished within 8 s, 0 ended as interrupted" in text
    assert "Traceback" not in text
