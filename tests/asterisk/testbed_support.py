"""Helpers of the asterisk tier: the `ivr` console script, and a dialplan AGI port that
nothing listens on."""

from __future__ import annotations

import contextlib
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from ivr.testbed.server import Testbed

IVR = Path(sys.executable).with_name("ivr")  # the console script of this venv


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def agi_port_nobody_uses(testbed: Testbed) -> Iterator[int]:
    """The AGI port of the dialplan, with nothing listening on it: config.yaml's port when
    it is free (no `ivr serve` running); otherwise the dialplan is generated for a free
    port for the duration (the same generator, another port), then put back."""
    port = testbed.config.asterisk.agi.port
    if port_is_free(port):
        yield port
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    asterisk = testbed.config.asterisk
    testbed.reconfigure(replace(testbed.config, asterisk=replace(asterisk, agi=replace(asterisk.agi, port=port))))
    try:
        yield port
    finally:
        testbed.reconfigure(testbed.config)
