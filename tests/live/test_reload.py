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
