"""Scorecards of a call: reading the form, checking it, saving reviews, tags and holds.

A review belongs to one reviewer: saving again updates that reviewer's review, another
reviewer adds their own. Each criterion of config.yaml's `qa` is scored 0..scale or
"n/a"; n/a criteria are left out of `scores` and of the total, which is the share of the
possible points over the criteria that apply (None when none does). Fields of criteria
the scorecard does not have (a config changed since the page was loaded, a forged form)
are ignored: only configured criteria are ever stored.

Saving a review marks the call reviewed and sets its tags (the form shows every tag of
the call, so it edits them all). A hold keeps the recording from retention; it is placed
with a reason from the scorecard and released with a reason of its own, by an admin or
by the user who placed it. Every review, hold and release is an audit entry.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Mapping, Optional

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ivr.settings.qa import QaSettings
from ivr.store.models import Call, CallTag, Hold, Review, User
from ivr.web import audit
from ivr.web.context import db

NA = "na"
HOLD_REASONS = ("complaint", "dispute", "under review")
MAX_NOTES = 5000
MAX_TAGS = 20
MAX_REASON = 200
_TAG = re.compile(r"^[\w-]{1,32}$")
_SCORE = re.compile(r"[0-9]{1,3}")


@dataclass
class ScorecardForm:
    """What the reviewer sent (kept to show the form again) and what is wrong with it."""

    scores: dict[str, str] = field(default_factory=dict)  # criterion -> "0".."scale", "na" or ""
    notes: str = ""
    tags: str = ""
    hold: bool = False
    hold_reason: str = ""
    hold_note: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # field -> message

    @classmethod
    def of_review(cls, review: Optional[Review], qa: QaSettings, tags: list[str]) -> "ScorecardForm":
        """The form as the page first shows it: the user's own review, or blank."""
        stored = review.scores if review is not None else {}
        scores = {key: (str(stored[key]) if key in stored else (NA if review is not None else "")) for key in qa.criteria}
        return cls(scores=scores, notes=review.notes if review is not None else "", tags=", ".join(tags))

    @classmethod
    def read(cls, form: Mapping[str, str], qa: QaSettings) -> "ScorecardForm":
        return cls(scores={key: form.get(f"score_{key}", "").strip().lower() for key in qa.criteria},
                   notes=form.get("notes", "").replace("\r\n", "\n").strip(),
                   tags=form.get("tags", "").strip(), hold=form.get("hold") in ("1", "on", "yes"),
                   hold_reason=form.get("hold_reason", "").strip(), hold_note=form.get("hold_note", "").strip())


def parse_scores(form: ScorecardForm, qa: QaSettings) -> dict[str, int]:
    """The scores of the applicable criteria; a message per bad field into `form.errors`."""
    scores: dict[str, int] = {}
    for key, label in qa.criteria.items():
        value = form.scores.get(key, "")
        if value == NA:
            continue
        if not value:
            form.errors[f"score_{key}"] = f"Choose a score for “{label}” or n/a."
        # ASCII and short: "²" passes isdigit() and fails int(), as do 5,000 digits
        elif not _SCORE.fullmatch(value) or not 0 <= int(value) <= qa.scale:
            form.errors[f"score_{key}"] = f"The score for “{label}” must be 0 to {qa.scale} or n/a."
        else:
            scores[key] = int(value)
    return scores


def total(scores: Mapping[str, int], scale: int) -> Optional[float]:
    """Points over possible points of the criteria that apply; None if none applies."""
    return sum(scores.values()) / (scale * len(scores)) if scores else None


def parse_tags(text: str) -> tuple[list[str], Optional[str]]:
    """Comma-separated tags as lower-case words (inner spaces become '-'): (tags, error)."""
    tags: list[str] = []
    for raw in text.split(","):
        tag = re.sub(r"\s+", "-", raw.strip().lower())
        if not tag:
            continue
        if not _TAG.match(tag):
            return [], f"“{raw.strip()[:40]}” is not a tag: use words of letters, digits, - or _ (up to 32)."
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        return [], f"At most {MAX_TAGS} tags."
    return tags, None


def validate(form: ScorecardForm, qa: QaSettings, held: bool) -> tuple[dict[str, int], list[str]]:
    scores = parse_scores(form, qa)
    tags, error = parse_tags(form.tags)
    if error:
        form.errors["tags"] = error
    if len(form.notes) > MAX_NOTES:
        form.errors["notes"] = f"Notes are limited to {MAX_NOTES} characters."
    if form.hold and not held:
        if form.hold_reason not in HOLD_REASONS:
            form.errors["hold_reason"] = "Say why the recording is kept: " + ", ".join(HOLD_REASONS) + "."
        if len(form.hold_note) > MAX_REASON:
            form.errors["hold_note"] = f"The note is limited to {MAX_REASON} characters."
    return scores, tags


def own_review(call_id: str, reviewer: str) -> Optional[Review]:
    return db().scalar(select(Review).where(Review.call_id == call_id, Review.reviewer == reviewer)
                       .order_by(Review.id).limit(1))


def save(call: Call, user: User, form: ScorecardForm, qa: QaSettings) -> Optional[Review]:
    """Check the form and save it all in one transaction; None (with `form.errors`) if wrong."""
    session = db()
    held = session.get(Hold, call.id) is not None
    scores, tags = validate(form, qa, held)
    if form.errors:
        return None
    now = dt.datetime.now(dt.timezone.utc)
    review = own_review(call.id, user.name)
    if review is None:
        review = Review(call_id=call.id, reviewer=user.name, created_at=now)
        session.add(review)
    review.scores, review.total, review.notes, review.updated_at = scores, total(scores, qa.scale), form.notes, now
    call.reviewed = True
    session.execute(delete(CallTag).where(CallTag.call_id == call.id))
    session.add_all(CallTag(call_id=call.id, tag=tag) for tag in tags)
    shown = f"{review.total:.0%}" if review.total is not None else "n/a"
    audit.record("review", call_id=call.id, detail=f"total {shown} over {len(scores)} criteria; tags: {', '.join(tags) or '-'}",
                 commit=False)
    if form.hold and not held:
        reason = form.hold_reason + (f": {form.hold_note}" if form.hold_note else "")
        session.add(Hold(call_id=call.id, reason=reason, placed_by=user.name, placed_at=now))
        audit.record("hold", call_id=call.id, detail=reason, commit=False)
    try:
        session.commit()
    except IntegrityError:  # a hold or tags saved by another reviewer in the same moment: theirs stand
        session.rollback()
        form.errors["form"] = "Someone else saved this call at the same moment; check it and save again."
        return None
    return review


def may_release(hold: Hold, user: User) -> bool:
    return user.role == "admin" or hold.placed_by == user.name


def release(hold: Hold, user: User, reason: str) -> None:
    """Remove the hold (the caller checked `may_release` and the reason); audited."""
    session = db()
    detail = f"{reason} (held for “{hold.reason}” by {hold.placed_by} since {hold.placed_at:%Y-%m-%d %H:%M} UTC)"
    session.delete(hold)
    audit.record("release", call_id=hold.call_id, detail=detail, commit=False)
    session.commit()


def reviews_of(call_id: str) -> list[Review]:
    return list(db().scalars(select(Review).where(Review.call_id == call_id).order_by(Review.created_at, Review.id)))


def tags_of(call_id: str) -> list[str]:
    return list(db().scalars(select(CallTag.tag).where(CallTag.call_id == call_id).order_by(CallTag.tag)))


def percent(value: Optional[float]) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"
