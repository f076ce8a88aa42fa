"""Call recordings: the index of the recordings folder, and retention.

`index_recordings(config)` links every WAV under config.yaml's recordings folder to its
call and stores its size, duration, checksum and the waveform the web player draws;
`purge_recordings(config, dry_run=...)` deletes the files older than the retention
period, except those of calls on hold, and keeps their rows for the audit. The `ivr
recordings` commands (`cli.py`) run both.

The names below are imported when first used: `ivr` imports this package for its
commands, and should not pay for SQLAlchemy on `ivr --help`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FileProblem": "ivr.recordings.files",
    "IndexReport": "ivr.recordings.index",
    "Pending": "ivr.recordings.index",
    "index_recordings": "ivr.recordings.index",
    "CallWithoutFile": "ivr.recordings.reconcile",
    "PurgeReport": "ivr.recordings.purge",
    "Purged": "ivr.recordings.purge",
    "purge_recordings": "ivr.recordings.purge",
    "PeakMeter": "ivr.recordings.waveform",
    "peaks": "ivr.recordings.waveform",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
