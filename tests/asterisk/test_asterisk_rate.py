"""bench/asterisk_rate.py on the real test bed, briefly: 5 new SIPp calls a second for
10 s through the bench flow (welcome, menu, key 2 as RFC 4733 events, queue, a brief
agent, MixMonitor, `ivr serve` storing each call in SQLite). Every call must go the whole
way: none failed in SIPp, each stored once as answered, each with its recording on disk
and linked in the database, and the CPU of every part measured."""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING

import pytest

from ivr.testbed.server import REPO

if TYPE_CHECKING:
    from ivr.testbed.server import Testbed

pytestmark = pytest.mark.asterisk


def _bench():
    spec = importlib.util.spec_from_file_location("asterisk_rate", REPO / "bench" / "asterisk_rate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_every_call_of_a_short_run_goes_through_and_is_stored_with_its_recording(testbed: "Testbed"):
    bench = _bench()
    run = bench.run_rate(testbed, rate=5, duration=10, log=print)
    report = run.table()
    assert run.placed == 50, report
    assert run.sipp_ok == 50 and run.sipp_failed == 0, report
    assert run.stored == 50 and run.outcomes == {"answered": 50}, report
    assert run.answered_unique == 50, report  # one stored call per SIPp call
    assert run.recorded == run.recorded_answered == run.linked == 50, report
    assert run.clean and run.failed == 0 and not run.failures, report
    assert run.max_up >= 5, report  # calls overlapped: about 7 s each, 5 new a second
    assert all(run.cpu[part] > 0 for part in ("asterisk", "sipp", "ivr serve")), report
    # the engine's AMI user has its event filter: it read the calls' queue events and was sent nothing else
    assert run.ami_filter and run.ami_events >= 50 * 4 and run.ami_unused == 0, report
    assert 1.0 < run.ivr_p50 < 6.0, report  # welcome, menu, key 2 three seconds in
