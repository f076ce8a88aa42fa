"""The real Asterisk 22 test bed for the `asterisk` tier (ivr.testbed.server).

`testbed` starts it once per session (building the Debian sid root on first use, about a
minute) from the repository's config.yaml, or reuses one already running (`make run`
starts it) and then leaves it running. If Asterisk cannot start, every test of the tier
fails with the reason: this tier never skips.

The test bed learns a caller's RTP source from the sequence numbers alone (strictrtp =
seqno, see ivr.testbed.files.Tuning): a SIPp caller sends no RTP but its keys, so the
packets of its first key are the learning, and when a busy machine delays SIPp and they
leave in a burst, strictrtp = yes drops them and the key is lost. This tier runs beside
the rest of the suite on a machine whose cores are busy.
"""

from __future__ import annotations

import sys
from typing import Iterator

import pytest

from ivr.testbed.ami_session import AmiSession
from ivr.testbed.files import Tuning
from ivr.testbed.server import REPO, Testbed
from ivr.errors import IvrError


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    try:
        bed = Testbed(REPO / "config.yaml", log=lambda line: print(line, file=sys.stderr),
                      tuning=Tuning(strict_rtp="seqno"))
        bed.start()
    except IvrError as exc:
        pytest.fail(f"the Asterisk test bed cannot start: {exc}", pytrace=False)
    yield bed
    if bed.started_here:
        bed.stop()


@pytest.fixture
def ami(testbed) -> Iterator[AmiSession]:
    """An AMI session logged in as the engine's user, receiving the events it may read."""
    with AmiSession(testbed.ami_host, testbed.ami_port) as session:
        session.login(testbed.ami_username, testbed.ami_secret, events="on")
        yield session
