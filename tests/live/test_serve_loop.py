"""`ivr serve`'s event loop: uvloop where it is installed, the standard loop on request, and
the interpreter tuned for a busy writer thread beside thousands of calls."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest

from ivr.live import serve as serve_module


class _Runtime:
    def __init__(self):
        self.loop_type = None
        self.frozen = None

    async def run_forever(self):
        self.loop_type = type(asyncio.get_running_loop()).__module__
        self.frozen = gc.get_freeze_count()


@pytest.fixture
def restored():
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)
    gc.unfreeze()


def test_uvloop_serves_by_default(restored, monkeypatch):
    monkeypatch.delenv("IVR_EVENT_LOOP", raising=False)
    runtime = _Runtime()
    serve_module.serve_forever(runtime)
    assert runtime.loop_type.startswith("uvloop")  # a dependency of the project on Linux
    assert sys.getswitchinterval() == pytest.approx(serve_module.SWITCH_INTERVAL)
    assert runtime.frozen > 0  # what was loaded at start is out of the collector's passes


def test_the_standard_loop_on_request(restored, monkeypatch):
    monkeypatch.setenv("IVR_EVENT_LOOP", "asyncio")
    runtime = _Runtime()
    serve_module.serve_forever(runtime)
    assert runtime.loop_type.startswith("asyncio")
