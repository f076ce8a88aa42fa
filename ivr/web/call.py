"""One call: its facts, the player with the waveform, a call-back booked on it with each try
and the Asterisk node it is dialled through, the timeline, the scorecard; the audio.

    GET  /calls/<call_id>                   call.show     the call page
    POST /calls/<call_id>/review            call.review   save the user's scorecard (and a hold)
    POST /calls/<call_id>/release           call.release  release the call's hold, with a reason
    POST /calls/<call_id>/callbacks/<id>/cancel  call.cancel_callback  an admin cancels a pending call-back
    GET  /recordings/<int:id>/audio         call.audio    the recording, by its database id only

The audio route's rules (path checks, Range, what is audited) are in `ivr.web.audio`;
the scorecard's in `ivr.web.reviews`; the timeline's in `ivr.web.timeline`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ivr import events as ev
from ivr.settings.asterisk import AsteriskSettings
from ivr.store import callbacks as callback_store
from ivr.store.models import Call, CallEvent, Hold, Recording
from ivr.web import audio, audit, reviews, timeline, waveform
from ivr.web.context import context, db
from ivr.web.reviews import ScorecardForm
from ivr.web.security import current_user, roles

bp = Blueprint("call", __name__)


def _call(call_id: str) -> Call:
    call = db().get(Call, call_id)
    if call is None:
        abort(404, description="There is no call with this id.")
    return call


def _recordings(call: Call) -> tuple[Optional[Recording], list[Recording]]:
    """The recording the player uses (the first whose file is there: the whole call's, before
    a voicemail message the caller left, which lies under voicemail/) and all of the call's."""
    rows = list(db().scalars(select(Recording).where(Recording.call_id == call.id).order_by(Recording.id)))
    rows.sort(key=lambda r: r.path.startswith("voicemail/"))  # stable: otherwise in id order
    return next((r for r in rows if audio.playable(r) is not None), None), rows


def _flow_note(call: Call, flows: Any) -> str:
    """Prompt texts come from the flows loaded now; say so when the call ran another version."""
    if flows is None:
        return "The flows could not be loaded, so prompt texts are not shown."
    if call.flow not in flows:
        return f"The flow {call.flow} is not loaded now, so its prompt texts are not shown."
    version = flows[call.flow].version
    if call.flow_version and version != call.flow_version:
        return f"Prompt texts are those of the current flow (version {version}); this call ran version {call.flow_version}."
    return ""


def _page(call: Call, form: Optional[ScorecardForm] = None, release_error: str = "", status: int = 200) -> Any:
    qa = context().config.qa
    user = current_user()
    flows = context().flows()
    events = list(db().scalars(select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.seq)))
    entries = timeline.build(events, flows, call.language)
    # where the engine stopped with the call in progress (ivr serve stopped, or crashed)
    interrupted = next((e for e in reversed(events) if e.type == ev.INTERRUPTED), None)
    player, recordings = _recordings(call)
    tags = reviews.tags_of(call.id)
    all_reviews = reviews.reviews_of(call.id)
    mine = next((r for r in all_reviews if user is not None and r.reviewer == user.name), None)
    hold = db().get(Hold, call.id)
    length = (player.duration if player is not None and player.duration else None) or call.duration
    wave = waveform.Waveform.of(player.peaks if player is not None else None, length, entries)
    page = render_template(
        "call.html", call=call, entries=entries, player=player, recordings=recordings, wave=wave,
        length=length, tags=tags, reviews=all_reviews, mine=mine, hold=hold, qa=qa,
        form=form or ScorecardForm.of_review(mine, qa, tags), hold_reasons=reviews.HOLD_REASONS,
        may_release=hold is not None and user is not None and reviews.may_release(hold, user),
        release_error=release_error, flow_note=_flow_note(call, flows), percent=reviews.percent,
        offset=timeline.offset, interrupted=interrupted, **_callbacks(call))
    return page, status


def _callbacks(call: Call) -> dict[str, Any]:
    """The call-backs booked on the call, the Asterisk each is dialled through, and the
    recordings of their tries by uniqueid (the generated dialplan records a call-back as it
    records a call: <date>/<uniqueid>.wav)."""
    booked = callback_store.of_call(db(), call.id)
    uniqueids = [t.uniqueid for cb in booked for t in cb.tries if t.uniqueid]
    found = db().scalars(select(Recording).where(Recording.uniqueid.in_(uniqueids), Recording.deleted_at.is_(None))) \
        if uniqueids else []
    asterisk = context().config.asterisk
    through = {cb.id: dialled_through(cb.node, cb.status in callback_store.OPEN_STATUSES, asterisk) for cb in booked}
    return {"callbacks": booked, "callback_recordings": {r.uniqueid: r for r in found}, "callback_nodes": through}


def dialled_through(node: Optional[str], still_open: bool, asterisk: AsteriskSettings) -> Optional[tuple[str, str]]:
    """The Asterisk node a call-back is dialled through, as the page names it, and a note when
    that is not simply its own node; None when there is nothing to tell (one Asterisk, and
    a call-back booked naming none: the node would be called `default`, which tells a
    reviewer nothing). With several Asterisks a reviewer needs it: the try's channel, its
    recording and the agent's queue are on that node. The rule is the schedulers' (docs/nodes.md):
    a call-back of no node, or of a node config.yaml no longer lists, is the first node's."""
    nodes = asterisk.all_nodes
    if not asterisk.multi_node:
        if node is None:
            return None
        # booked when the site had several Asterisks; it now has one, which dials everything
        return node, ("not in config.yaml now: the only Asterisk dials its tries" if still_open
                      else "not in config.yaml now")
    first = nodes[0].name
    if node is None:
        return first, "the first node: the call-back was booked naming no node"
    if asterisk.node(node) is None:
        return node, (f"not in config.yaml now: the first node, {first}, dials its tries" if still_open
                      else "not in config.yaml now")
    return node, ""


@bp.route("/calls/<call_id>")
@roles("qa", "admin")
def show(call_id: str) -> Any:
    return _page(_call(call_id))


@bp.route("/calls/<call_id>/review", methods=["POST"])
@roles("qa", "admin")
def review(call_id: str) -> Any:
    call = _call(call_id)
    qa = context().config.qa
    form = ScorecardForm.read(request.form, qa)
    if reviews.save(call, current_user(), form, qa) is None:
        return _page(call, form, status=422)
    flash("Scorecard saved; the call is marked reviewed.", "success")
    return redirect(url_for("call.show", call_id=call.id, _anchor="scorecard"))


@bp.route("/calls/<call_id>/release", methods=["POST"])
@roles("qa", "admin")
def release(call_id: str) -> Any:
    call = _call(call_id)
    hold = db().get(Hold, call.id)
    if hold is None:
        flash("This call is not on hold.", "error")
        return redirect(url_for("call.show", call_id=call.id))
    user = current_user()
    if not reviews.may_release(hold, user):
        abort(403, description="Only an admin or the reviewer who placed the hold may release it.")
    reason = request.form.get("release_reason", "").strip()
    if not reason or len(reason) > reviews.MAX_REASON:
        return _page(call, release_error=f"Say why the hold is released (up to {reviews.MAX_REASON} characters).",
                     status=422)
    reviews.release(hold, user, reason)
    flash("The hold is released; retention may delete the recording when it is due.", "success")
    return redirect(url_for("call.show", call_id=call.id, _anchor="hold"))


@bp.route("/calls/<call_id>/callbacks/<int(max=2147483647):callback_id>/cancel", methods=["POST"])
@roles("admin")
def cancel_callback(call_id: str, callback_id: int) -> Any:
    """An admin cancels a pending call-back of the call (the customer called again, say): it is
    not dialled. One that rings now cannot be taken back."""
    call = _call(call_id)
    if not any(cb.id == callback_id for cb in callback_store.of_call(db(), call.id)):
        abort(404, description="There is no such call-back on this call.")
    user = current_user()
    now = dt.datetime.now(dt.timezone.utc)
    if callback_store.cancel(db(), callback_id, user.name if user else "?", now):
        audit.record("callback_cancel", call_id=call.id, detail=f"call-back {callback_id}")  # commits both
        flash("The call-back is cancelled; it will not be dialled.", "success")
    else:
        db().rollback()
        flash("Only a pending call-back can be cancelled; this one is ringing or over.", "error")
    return redirect(url_for("call.show", call_id=call.id, _anchor="callbacks"))


# endpoint "audio" while the function has another name: `audio` is the module it calls
# max: a bigger id overflows the database's integer (a 500); it routes nowhere (404) instead
@bp.route(f"/recordings/<int(max={2 ** 63 - 1}):recording_id>/audio", endpoint="audio")
@roles("qa", "admin")
def audio_file(recording_id: int) -> Any:
    return audio.serve(recording_id)
