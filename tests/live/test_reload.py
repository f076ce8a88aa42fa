"""Hot reload: a good change swaps the flows for new calls, a broken one changes nothing,
and a call in progress finishes on the flow it started on."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
from pathlib import Path

import pytest

from ivr.channels.scripted import ScriptedChannel
from ivr.clock import VirtualClock
from ivr.live.reload import FlowReloader

ROOT = Path(__file__).resolve().parents[2]
AT = dt.datetime.fromisoformat("2026-11-24T10:00:00+01:00")


@pytest.fixture
def installation(tmp_path):
    for name in ("config.yaml",):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_good_change_swaps_and_broken_change_keeps_the_running_flows(installation, caplog):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    first = reloader.load()
    version = first.flows["main"].version
    main = installation / "flows" / "main.yaml"
    _edit(main, 'Hello, thank you for calling Example Ltd.', 'Good day, thank you for calling Example Ltd.')
    assert reloader.changed()
    assert reloader.reload() is True
    second = reloader.current()
    assert second is not first and second.flows["main"].version != version
    assert second.sampler is first.sampler  # survey sampling counts on
    _edit(main, '      "2": complaints', '      "2": complants')
    with caplog.at_level(logging.ERROR, logger="ivr.live.reload"):
        assert reloader.reload() is False
    assert reloader.current() is second
    assert any('goes to "complants"' in r.getMessage() for r in caplog.records)
    assert any("the running flows stay" in r.getMessage() for r in caplog.records)


def test_a_call_in_progress_finishes_on_the_flow_it_started_on(installation):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    reloader.load()
    main = installation / "flows" / "main.yaml"

    class ReloadMidCall(ScriptedChannel):
        """Reloads a changed main menu while the caller listens to the language menu."""

        async def read_digits(self, *args, **kwargs):
            if not getattr(self, "done", False):
                self.done = True
                _edit(main, '      "1": sales\n', '      "1": complaints\n')
                assert reloader.reload()
            return await super().read_digits(*args, **kwargs)

    engine = reloader.current()  # what the server hands a new call
    channel = ReloadMidCall("1 1", VirtualClock(AT))
    call = asyncio.run(engine.run(channel, "main", caller="+48221234567", clock=channel.clock))
    assert call.department == "sales"  # the old menu
    fresh = ScriptedChannel("1 1", VirtualClock(AT))
    new_call = asyncio.run(reloader.current().run(fresh, "main", clock=fresh.clock))
    assert new_call.department == "complaints"
    assert new_call.events[0].data["version"] != call.events[0].data["version"]


def test_watch_reloads_on_file_change(installation):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    reloader.load()
    before = reloader.generation

    async def main():
        task = asyncio.create_task(reloader.watch(interval=0.05))
        await asyncio.sleep(0.1)
        _edit(installation / "flows" / "faq.yaml", "Answers to the most common questions.", "Common answers.")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if reloader.generation > before:
                break
        task.cancel()

    asyncio.run(main())
    assert reloader.generation == before + 1


def test_a_broken_config_is_refused_too(installation, caplog):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    engine = reloader.load()
    _edit(installation / "config.yaml", "timezone: Europe/Warsaw", "timezone: Europe/Warsow")
    with caplog.at_level(logging.ERROR, logger="ivr.live.reload"):
        assert reloader.reload() is False
    assert reloader.current() is engine


# --- the segments' CSV files ---------------------------------------------------------------------
PREMIUM_PATH = ["welcome", "open_check", "vip_check", "premium_greeting"]


def _premium(engine, caller: str) -> bool:
    channel = ScriptedChannel("", VirtualClock(AT))
    call = asyncio.run(engine.run(channel, "main", caller=caller, clock=channel.clock))
    return call.path[:4] == PREMIUM_PATH


def _watch(reloader: FlowReloader, edit=None, until=lambda: True, ticks_after: int = 0, deadline: float = 10.0) -> None:
    """Runs the watcher (every 50 ms), `edit()` after its first tick, until `until()` holds and
    then `ticks_after` more ticks have passed; AssertionError after `deadline` seconds. Polls
    the condition rather than sleeping a fixed time: a loaded machine only takes longer."""
    ticks = [0]
    check = reloader.changed_files

    def counted():
        ticks[0] += 1
        return check()

    reloader.changed_files = counted  # type: ignore[method-assign]

    async def main():
        task = asyncio.create_task(reloader.watch(interval=0.05))
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + deadline
            while ticks[0] < 1:
                assert loop.time() < end, "the watch never ticked"
                await asyncio.sleep(0.01)
            if edit is not None:
                edit()
            while not until():
                assert loop.time() < end, f"not so after {deadline:g} s of watching"
                await asyncio.sleep(0.01)
            target = ticks[0] + ticks_after
            while ticks[0] < target:
                assert loop.time() < end, f"not {ticks_after} more ticks after {deadline:g} s"
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            del reloader.changed_files

    asyncio.run(main())


def test_a_rewritten_csv_file_counts_for_new_calls_and_calls_in_progress_keep_theirs(installation, caplog):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    first = reloader.load()
    vip = installation / "data" / "vip.csv"
    assert _premium(first, "+48 601 200 300") and not _premium(first, "+48 600 100 200")
    with caplog.at_level(logging.INFO, logger="ivr.live.reload"):
        _watch(reloader, lambda: vip.write_text("number\n+48 600 100 200\n", encoding="utf-8"),
               until=lambda: reloader.generation >= 2, ticks_after=5)
    assert reloader.generation == 2  # once, though the watch ticked five times after
    second = reloader.current()
    assert _premium(second, "+48 600 100 200") and not _premium(second, "+48 601 200 300")
    assert _premium(first, "+48 601 200 300")  # the engine a call in progress holds: its numbers
    said = [r.getMessage() for r in caplog.records]
    assert f"changed: {vip}; reloading" in said
    assert f'segment "vip": 1 number(s) from {vip}' in said


def test_rows_of_a_rewritten_csv_file_that_are_left_out_are_logged(installation, caplog):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    reloader.load()
    vip = installation / "data" / "vip.csv"
    vip.write_text("number\n+48 600 100 200\nKowalski\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="ivr.live.reload"):
        assert reloader.reload()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.endswith('vip.csv:3:1: warning: segment "vip": "Kowalski" is no phone number '
                            "(at least 4 digits; '#' starts a comment); the row is left out"), warning


@pytest.mark.parametrize("breaking", ["unreadable", "deleted"])
def test_a_broken_csv_file_keeps_the_numbers_and_is_logged_once(installation, caplog, breaking):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    first = reloader.load()
    vip = installation / "data" / "vip.csv"

    def breaks():
        if breaking == "deleted":
            vip.unlink()
        else:
            vip.write_bytes(b"number\n+48 600 100 200,Caf\xe9\n")

    with caplog.at_level(logging.INFO, logger="ivr.live.reload"):
        _watch(reloader, breaks, until=lambda: any(r.levelno == logging.ERROR for r in caplog.records), ticks_after=8)
    assert reloader.current() is first and _premium(first, "+48 601 200 300")
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    why = "No such file or directory" if breaking == "deleted" else "are not UTF-8 text (line 2: byte 0xe9)"
    assert len(refused) == 2 and why in refused[0], refused  # the error and the sum, once in nine ticks
    assert refused[1] == "reload refused: 1 error(s); the running flows stay, with their segments' numbers"
    # mended: taken at the next tick
    _watch(reloader, lambda: vip.write_text("+48 600 100 200\n", encoding="utf-8"), until=lambda: reloader.generation >= 2)
    assert reloader.generation == 2 and _premium(reloader.current(), "+48 600 100 200")


def test_a_csv_file_the_config_no_longer_names_is_no_longer_watched(installation):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    reloader.load()
    (installation / "data" / "gold.csv").write_text("+48 600 100 200\n", encoding="utf-8")
    _edit(installation / "config.yaml", "numbers: data/vip.csv", "numbers: data/gold.csv")
    assert reloader.reload()
    assert reloader.changed_files() == []  # vip.csv left the watch without looking changed
    _watch(reloader, lambda: (installation / "data" / "vip.csv").write_text("+48 111 111 111\n", encoding="utf-8"),
           ticks_after=4)
    assert reloader.generation == 2
    _watch(reloader, lambda: (installation / "data" / "gold.csv").write_text("+48 111 111 111\n", encoding="utf-8"),
           until=lambda: reloader.generation >= 3)
    assert reloader.generation == 3 and _premium(reloader.current(), "+48 111 111 111")


def test_the_runtime_start_makes_the_lookups_client_before_any_call(installation):
    """The HTTP client (tens of ms: the CA file) is made when the runtime starts, not in the
    first caller's time-out; starting again keeps it."""
    _edit(installation / "config.yaml", "  vip: {numbers: data/vip.csv}",
          "  vip: {numbers: data/vip.csv}\n  crm: {lookup: {url: 'http://127.0.0.1:9/{number}', timeout: 300ms}}")
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    reloader.load()

    async def main():
        await reloader.start()
        client = reloader.lookups._client
        await reloader.start()
        again = reloader.lookups._client
        await reloader.close()
        return client, again, reloader.lookups._client

    client, again, closed = asyncio.run(main())
    assert client is not None and again is client and client.is_closed and closed is None


def test_without_lookup_segments_the_runtime_carries_no_http_client(installation):
    # an idle HTTP client holds the CA certificates: megabytes a server without lookups does not need
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    reloader.load()

    async def main():
        await reloader.start()
        made = reloader.lookups._client
        await reloader.close()
        return made

    assert asyncio.run(main()) is None


def test_a_reload_gives_what_was_frozen_at_start_back_to_the_collector(installation):
    import gc

    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    reloader.load()
    gc.freeze()  # as `ivr serve` does once it has loaded
    try:
        assert gc.get_freeze_count() > 0
        _edit(installation / "flows" / "main.yaml", "Customer line of Example Ltd.", "The customer line.")
        assert reloader.reload()
        assert gc.get_freeze_count() == 0  # the replaced flows can be freed
    finally:
        gc.unfreeze()
