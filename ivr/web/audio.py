"""Recordings for the player: found by database id only, served with HTTP Range, audited.

The file is never named by the request: the recording's id leads to its row, the row's
path (relative to the recordings folder) is resolved with every symlink followed, and the
result must still lie inside the recordings folder and be a regular file. A path that
escapes (`../..`, an absolute path, a symlink out) is answered like a missing file (404),
so the answer says nothing of what exists elsewhere.

Ranges: `flask.send_file(conditional=True)` answers `Range` with 206 and Content-Range,
a range past the end with 416, and always sends Accept-Ranges; a browser fetches a few
ranges for every play and one for every seek.

Audit rule, so a seek does not fill the log: a GET is logged (as "play", or "download"
with ?download=1) only when it asks for the file from its first byte, that is without a
Range header or with a range starting at byte 0, and only when the same user has not
logged the same action on the same recording within `REPEAT_WINDOW` seconds (browsers
open a media stream twice on load). Ranges from any later byte (seeks, the rest of the
file, the suffix a player reads for metadata) and HEAD requests are never logged; an
answer that is not 200 or 206 (304, 416) is not logged either.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Optional

from flask import Response, abort, request, send_file
from sqlalchemy import select
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_range_header

from ivr.store.models import AuditEntry, Recording
from ivr.web import audit
from ivr.web.context import context, db
from ivr.web.security import current_user

REPEAT_WINDOW = dt.timedelta(seconds=10)
MIMETYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".opus": "audio/ogg",
             ".gsm": "audio/x-gsm"}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def recording_file(root: Path, stored: str) -> Optional[Path]:
    """The file of a recording whose stored path is `stored`, if it lies inside `root`."""
    if not stored or "\x00" in stored:
        return None
    root = root.resolve()
    try:
        candidate = (root / stored).resolve(strict=True)  # follows every symlink on the way
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a bad name
        return None
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def playable(recording: Optional[Recording]) -> Optional[Path]:
    """The file the player may use for `recording` (None when deleted, missing or outside)."""
    if recording is None or recording.deleted_at is not None:
        return None
    return recording_file(context().recordings_dir, recording.path)


def download_name(recording: Recording, path: Path) -> str:
    """call-<call id><suffix>: the call's id made safe for a file name."""
    base = _UNSAFE_NAME.sub("_", recording.call_id or f"recording-{recording.id}").strip("._") or str(recording.id)
    return f"call-{base}{path.suffix.lower() or '.wav'}"


def _from_first_byte() -> bool:
    header = request.headers.get("Range")
    if not header:
        return True
    ranges = parse_range_header(header)
    # an unparsable Range is ignored by send_file: the whole file is sent from byte 0
    return ranges is None or (len(ranges.ranges) >= 1 and ranges.ranges[0][0] == 0)


def _logged_lately(action: str, recording_id: int) -> bool:
    user = current_user()
    since = dt.datetime.now(dt.timezone.utc) - REPEAT_WINDOW
    found = db().scalar(select(AuditEntry.id).where(
        AuditEntry.action == action, AuditEntry.recording_id == recording_id,
        AuditEntry.user == (user.name if user is not None else None), AuditEntry.at >= since).limit(1))
    return found is not None


def serve(recording_id: int) -> Response:
    """The recording `recording_id` for the player (or as an attachment with ?download=1).

    Audited once per play, not per request: a 200/206 answer to a GET from byte 0 (no
    Range, or a range starting at 0) is logged as "play" or "download", unless the same
    user logged that on this recording in the last REPEAT_WINDOW; seeks never are.
    """
    recording = db().get(Recording, recording_id)
    path = playable(recording)
    if recording is None or path is None:
        abort(404, description="No such recording, or it was deleted.")
    download = request.args.get("download") == "1"
    try:
        response = send_file(path, mimetype=MIMETYPES.get(path.suffix.lower(), "application/octet-stream"),
                             as_attachment=download, download_name=download_name(recording, path),
                             conditional=True, etag=True, max_age=0)
    except RequestedRangeNotSatisfiable as exc:
        # answered here: the app's error page would drop the Content-Range the client needs
        response = Response(f"The range is not in this recording of {exc.length} bytes.\n", 416,
                            mimetype="text/plain")
        response.headers["Content-Range"] = f"bytes */{exc.length}"
        response.headers["Accept-Ranges"] = "bytes"
    # the recording of a call is personal data: no proxy or shared cache may keep it
    response.headers["Cache-Control"] = "private, no-store, max-age=0"
    response.headers.pop("Expires", None)
    if request.method == "GET" and response.status_code in (200, 206) and _from_first_byte():
        action = "download" if download else "play"
        if not _logged_lately(action, recording.id):
            audit.record(action, call_id=recording.call_id, recording_id=recording.id, detail=recording.path)
    return response
