"""The one rate-limited log line of FastAGI connections the server closed.

A hostile or broken client can open thousands of connections (idle ones, never-ending
blocks, endless lines); a WARNING for each would flood the log and cost the server more
than the connections do. The first closing in a quiet spell is logged at once; the ones
after it are counted by reason and logged as one line per `WINDOW` seconds:

    closed 4,998 FastAGI connections in 10 s: 4,990 sent no complete AGI environment within 10 s, 8 sent a line over the 64 kB limit
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Optional

WINDOW = 10.0  # seconds between two lines at most


class RefusalLog:
    """Counts closed connections by reason and logs them, one line per window at most."""

    def __init__(self, logger: logging.Logger):
        self.log = logger
        self.counts: Counter[str] = Counter()
        self.total: Counter[str] = Counter()  # since the start, for tests and the bench
        self._timer: Optional[asyncio.TimerHandle] = None
        self._window = WINDOW

    def count(self, reason: str) -> None:
        self.total[reason] += 1
        if self._timer is None:  # the first in a quiet spell: said at once
            self.log.warning("closed a FastAGI connection: it %s (more are counted, one line per %g s)",
                             reason, WINDOW)
            self._window = WINDOW
            self._timer = asyncio.get_running_loop().call_later(self._window, self._tick)
            return
        self.counts[reason] += 1

    def _tick(self) -> None:
        self._timer = None
        if self.flush():  # still closing: the next window is counted too
            self._timer = asyncio.get_running_loop().call_later(self._window, self._tick)

    def flush(self) -> bool:
        """Log what was counted and not said yet; False when there was nothing."""
        if not self.counts:
            return False
        total = sum(self.counts.values())
        reasons = ", ".join(f"{n:,} {reason}" for reason, n in self.counts.most_common())
        self.log.warning("closed %s FastAGI connection%s in %g s: %s", f"{total:,}", "" if total == 1 else "s",
                         self._window, reasons)
        self.counts.clear()
        return True

    def stop(self) -> None:
        """Say what is left (the server is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
