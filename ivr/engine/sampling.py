"""Which calls hear the survey: every N-th call reaching it, and every call shorter than a limit."""

from __future__ import annotations

from collections import defaultdict

from ivr.flow.nodes.survey import Survey


class SurveySampler:
    """Counts the calls that reach each survey node (per process; a reload keeps counting)."""

    def __init__(self, start: int = 0):
        self._counts: defaultdict[tuple[str, str], int] = defaultdict(lambda: start)

    def should_ask(self, flow_id: str, node: Survey, elapsed: float) -> bool:
        key = (flow_id, node.name)
        self._counts[key] += 1
        sample = node.sample
        if sample is None:
            return True
        if sample.every is not None and self._counts[key] % sample.every == 0:
            return True
        return sample.shorter_than is not None and elapsed < sample.shorter_than
