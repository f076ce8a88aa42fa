"""The files of the recordings folder: which ones are recordings, and whose call they are.

Live calls: `<YYYY-MM-DD>/<uniqueid>.wav` (Asterisk's MixMonitor; voicemail messages
under `voicemail/<mailbox>/<uniqueid>.wav` name their call the same way). Simulated calls
(`ivr demo`): `simulated/<YYYY-MM-DD>/<call id>.wav`. Paths are kept relative to the
folder, with '/', as the `recordings.path` column holds them.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

SIMULATED = "simulated"
SUFFIX = ".wav"
TEMPORARY = (".part", ".tmp", ".partial", "~")  # a copy or a rendering not finished yet


@dataclass(frozen=True)
class FileProblem:
    """A file that could not be indexed or deleted, and why."""

    path: str  # relative to the recordings folder
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class FoundFile:
    path: str  # relative, with '/'
    size: int
    mtime: dt.datetime  # UTC, to the microsecond (as the database keeps it)

    @property
    def simulated(self) -> bool:
        return self.path.startswith(SIMULATED + "/")

    @property
    def key(self) -> str:
        """The call id (simulated) or the call id or uniqueid (live) the file is named by."""
        return PurePosixPath(self.path).stem


def is_recording_name(name: str) -> bool:
    """A WAV file's name, not a hidden or temporary one."""
    lower = name.lower()
    return not name.startswith(".") and lower.endswith(SUFFIX) and not lower.endswith(TEMPORARY)


def mtime_of(stat: os.stat_result) -> dt.datetime:
    """The file's mtime in UTC, cut to the microsecond: compared with the stored one for equality."""
    micros = stat.st_mtime_ns // 1000
    return dt.datetime.fromtimestamp(micros // 1_000_000, dt.timezone.utc).replace(microsecond=micros % 1_000_000)


def walk(root: Path, problems: list[FileProblem]) -> Iterator[FoundFile]:
    """Every recording under `root`, at any depth, in name order; hidden folders are skipped
    and symbolic links to folders are not followed (they could lead out of the folder).
    A folder that cannot be listed is added to `problems` and the walk goes on."""
    yield from _walk(root, "", problems)


def _walk(folder: Path, prefix: str, problems: list[FileProblem]) -> Iterator[FoundFile]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):  # gone while we looked
        return
    except OSError as exc:
        problems.append(FileProblem(prefix.rstrip("/") or ".", f"cannot list the folder ({exc.strerror or exc})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not _utf8(entry.name):  # the database could not store its path
            shown = os.fsencode(entry.name).decode("utf-8", "replace")
            problems.append(FileProblem(prefix + shown, "its name is not UTF-8 text; rename it"))
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(Path(entry.path), prefix + entry.name + "/", problems)
                continue
            if not is_recording_name(entry.name) or not entry.is_file():
                continue
            stat = entry.stat()
        except FileNotFoundError:  # deleted while we looked
            continue
        yield FoundFile(prefix + entry.name, stat.st_size, mtime_of(stat))


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def inside(root: Path, relative: str) -> Path:
    """`root / relative`, refusing a path that leads out of `root` (ValueError), by its name or
    through a folder that is a symbolic link to elsewhere. The file itself may be a link:
    deleting it removes the link, never what it points to."""
    if not relative or PurePosixPath(relative).is_absolute() or ".." in PurePosixPath(relative).parts:
        raise ValueError(f"{relative!r} is not a path inside the recordings folder")
    path = root / relative
    if not path.parent.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{relative!r} lies in a folder that links out of the recordings folder")
    return path
