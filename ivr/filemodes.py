"""Files and folders the service makes: open to its own user and group, never to others.

The database holds password hashes, call data and the audit log; recordings hold callers'
voices and the account numbers some of them speak. Python creates files 0644 and folders
0755 under the usual umask (022), readable by every user of the machine, so whatever
holds such data is created here with an explicit mode:

- `FILE_MODE` (0640) for files: the user writes, the group reads.
- `DIR_MODE` (0750) for folders only the service writes into.
- `SHARED_DIR_MODE` (2770) for the recordings folders that Asterisk writes into too
  (MixMonitor's recordings, RECORD FILE's voicemail): Asterisk, `ivr serve` and `ivr web`
  share one group, and the setgid bit hands that group on to every file and folder made
  inside, whoever makes it. `ivr web` deletes old recordings (retention), for which it
  needs to write into the folders Asterisk made.

A stricter umask makes the private modes stricter still (0600, 0700); the shared mode is
set exactly, as Asterisk could not write a voicemail into a folder without group write.

What already exists with a mode open to others is tightened (`close_to_others`): the
"other" bits are taken away, nothing else is changed, and the caller logs it once. A
folder closed to others closes everything below it, so old recordings made 0644 are
covered by closing the recordings folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Optional

FILE_MODE = 0o640
DIR_MODE = 0o750
SHARED_DIR_MODE = 0o2770
OTHERS = 0o007


def private_dir(path: Path, mode: int = DIR_MODE) -> Path:
    """`path` as a folder; each missing level is made with `mode` (less the umask)."""
    for folder in _missing_levels(path):
        try:
            folder.mkdir(mode)
        except FileExistsError:  # another process made it meanwhile
            continue
    return path


def _missing_levels(path: Path) -> list[Path]:
    """The folders of `path` that do not exist yet, outermost first."""
    missing = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    return missing[::-1]


def shared_dir(path: Path) -> Path:
    """`path` as a folder Asterisk writes into as well: each missing level is made with
    `SHARED_DIR_MODE` exactly (mkdir drops the setgid bit and the umask takes group write)."""
    if path.is_dir():  # the common case (every voicemail): one stat
        return path
    for folder in _missing_levels(path):
        try:
            folder.mkdir(0o700)
        except FileExistsError:
            continue
        os.chmod(folder, SHARED_DIR_MODE)
    return path


def recordings_root(path: Path) -> Optional[str]:
    """The recordings folder, made `SHARED_DIR_MODE` when missing, else closed to others
    (which closes every recording below it); a sentence for the log when it was open."""
    if not path.exists():
        try:
            shared_dir(path)
        except OSError as exc:  # Asterisk may still make it; the service goes on and says so
            return f"{path} cannot be made: {exc.strerror}"
        return None
    return close_to_others(path)


def create_private_file(path: Path, mode: int = FILE_MODE) -> bool:
    """Create `path` empty with `mode` (less the umask) unless it exists; True if made here."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def close_to_others(path: Path) -> Optional[str]:
    """Take the "other" bits away from an existing file or folder; a sentence for the log
    when there were any (what was changed, or why it could not be), else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & OTHERS:
        return None
    try:
        os.chmod(path, mode & ~OTHERS)
    except OSError as exc:
        return f"{path} is open to every user of this machine (mode {mode:04o}) and cannot be closed: {exc.strerror}"
    return f"{path} was open to every user of this machine (mode {mode:04o}); closed to others (now {mode & ~OTHERS:04o})"


__all__ = ["FILE_MODE", "DIR_MODE", "SHARED_DIR_MODE", "private_dir", "shared_dir", "recordings_root", "create_private_file",
           "close_to_others"]
