"""bench/multinode.py's own parts: the SIPp scenario of each layout and what a run counts
as clean. The real run needs the multi-node test bed (its live counterpart is
tests/asterisk/test_live_multinode.py)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import multinode  # noqa: E402


def test_each_call_has_its_own_number_and_a_proxied_call_follows_the_route():
    direct = multinode.scenario("486100", proxied=False)
    assert "sip:486100[call_number]@" in direct and "rrs" not in direct and "[routes]" not in direct
    proxied = multinode.scenario("486200", proxied=True)
    assert 'rrs="true"' in proxied and "ACK [next_url] SIP/2.0\n[routes]" in proxied
    assert f'timeout="{round(multinode.HOLD * 1000)}"' in proxied


def test_a_run_is_clean_only_when_every_call_went_through_and_was_stored():
    result = multinode.Result("two nodes", 4, placed=80, ok=80, failed=0, stored=80, seconds=19.75,
                              cpu={"asterisk": 8.0, "ivr serve": 4.0})
    assert result.clean
    row = result.row()
    assert "CLEAN at   4.1 calls/s" in row and "asterisk 100.0" in row and "ivr serve  50.0" in row
    assert not multinode.Result("one node", 4, placed=80, ok=80, stored=79).clean
    assert not multinode.Result("one node", 4, placed=80, ok=79, failed=1, stored=79).clean
    assert not multinode.Result("one node", 4).clean
