"""The database tables of an installation: calls, their events, recordings, queue events,
the survey's sampling counts, and the QA side: users of the web app, reviews (scorecards), holds, and the audit log.

A `Call` row is the summary QA filters on (date, caller, department, agent, outcome,
duration, keys, survey score, reviewed); `CallEvent` rows hold the call's full history in
the one event schema of `ivr.events` (`CallEvent.to_dict()` equals the
`Event.to_dict()` it was written from). `CallNode` and `CallTag` are narrow lookup tables
so "reached node X" and "tagged Y" stay index searches on a million calls.

Times are timezone-aware UTC in Python on every database (`UTCDateTime`); on SQLite they
are stored as UTC text, so their order is time order and range filters use the indexes.
Text from the phone line (caller number and name, channel) is untrusted: it is stored as
received, as data, and only ever bound as a parameter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ivr.events import event_dict

# Constraint names that are the same on every database, so migrations can name them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SOURCES = ("live", "simulated")


class UTCDateTime(TypeDecorator):
    """A moment, always timezone-aware UTC in Python; a naive value is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[dt.datetime], dialect: Any) -> Optional[dt.datetime]:
        if value is None:
            return None
        value = to_utc(value)
        # SQLite keeps no zone: store UTC wall time, which sorts as time
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Optional[dt.datetime], dialect: Any) -> Optional[dt.datetime]:
        return None if value is None else to_utc(value)


def to_utc(value: dt.datetime) -> dt.datetime:
    """`value` in UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON(), str: String()}


class Call(Base):
    """One call, live or simulated: who called, where it went, how it ended."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(primary_key=True)  # the engine's call id (live: Asterisk's uniqueid)
    uniqueid: Mapped[Optional[str]]  # Asterisk's UNIQUEID of the caller's channel
    channel: Mapped[Optional[str]]  # e.g. PJSIP/trunk-00000012
    source: Mapped[str] = mapped_column(default="live")  # one of SOURCES
    flow: Mapped[str]  # the flow the call started in
    flow_version: Mapped[Optional[str]]  # hash of the compiled flow it ran on
    caller: Mapped[str] = mapped_column(default="")  # number as received (untrusted text)
    caller_name: Mapped[Optional[str]]  # name as received (untrusted text)
    caller_digits: Mapped[str] = mapped_column(default="")  # the digits of `caller`, for partial search
    language: Mapped[Optional[str]]  # the language the call ended in
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[Optional[dt.datetime]]
    duration: Mapped[Optional[float]] = mapped_column(Float)  # seconds, when the call has ended
    outcome: Mapped[Optional[str]]  # an ivr.events.Outcome; null while the call runs
    department: Mapped[Optional[str]]  # the department it was last transferred to
    queue_wait: Mapped[Optional[float]] = mapped_column(Float)  # seconds queued, over every transfer
    agent: Mapped[Optional[str]]  # the agent who answered last, e.g. PJSIP/101
    talk: Mapped[Optional[float]] = mapped_column(Float)  # seconds with agents
    abandoned: Mapped[bool] = mapped_column(default=False)  # the caller left a queue before an agent answered
    survey_score: Mapped[Optional[int]]
    last_flow: Mapped[Optional[str]]
    last_node: Mapped[Optional[str]]
    keys: Mapped[str] = mapped_column(default="")  # keys and inputs, space-separated; sensitive ones masked
    reviewed: Mapped[bool] = mapped_column(default=False)  # set by QA
    # the `ivr serve` process that ran the call (host:pid:random, an EngineBeat's id): while the
    # call is open, only that engine may end it, unless its heartbeat has stopped
    engine_id: Mapped[Optional[str]]

    events: Mapped[list["CallEvent"]] = relationship(back_populates="call", order_by="CallEvent.seq",
                                                     cascade="all, delete-orphan", passive_deletes=True)
    nodes: Mapped[list["CallNode"]] = relationship(back_populates="call", cascade="all, delete-orphan",
                                                   passive_deletes=True)
    tags: Mapped[list["CallTag"]] = relationship(back_populates="call", cascade="all, delete-orphan",
                                                 passive_deletes=True)
    recordings: Mapped[list["Recording"]] = relationship(back_populates="call", passive_deletes=True)

    __table_args__ = (
        # The QA list is "newest first within a date range", narrowed by one filter more:
        # each of these serves the filter and the order at once.
        # the date index carries the digits too: "number contains ..." within a date range
        # is then checked in the index, without a look-up of each call's row
        Index("ix_calls_started_at_caller_digits", "started_at", "caller_digits"),
        Index("ix_calls_department_started_at", "department", "started_at"),
        Index("ix_calls_agent_started_at", "agent", "started_at"),
        Index("ix_calls_outcome_started_at", "outcome", "started_at"),
        Index("ix_calls_survey_score_started_at", "survey_score", "started_at"),
        Index("ix_calls_reviewed_started_at", "reviewed", "started_at"),
        Index("ix_calls_duration", "duration"),
        Index("ix_calls_queue_wait", "queue_wait"),  # the list sorted by wait or talk time
        Index("ix_calls_talk", "talk"),
        Index("ix_calls_caller_digits", "caller_digits"),  # every call from a number; a partial one over all dates
        Index("ix_calls_uniqueid", "uniqueid"),
    )


class CallEvent(Base):
    """One event of a call, as `ivr.events.Event.to_dict()` gave it (sensitive values masked)."""

    __tablename__ = "call_events"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    t: Mapped[float] = mapped_column(Float)  # seconds since the call started
    type: Mapped[str]
    flow: Mapped[str]
    node: Mapped[Optional[str]]
    data: Mapped[dict[str, Any]]  # the event's details

    call: Mapped[Call] = relationship(back_populates="events")

    # SQLite: stored in primary-key order, so a call's events lie together (one range read)
    __table_args__ = ({"sqlite_with_rowid": False},)

    def to_dict(self) -> dict[str, Any]:
        """The event as `Event.to_dict()` gave it when the call ran."""
        return event_dict(self.call_id, self.seq, self.t, self.type, self.flow, self.node, self.data or {})


class CallNode(Base):
    """A node a call entered (once per call, however often): "calls that reached X"."""

    __tablename__ = "call_nodes"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    flow: Mapped[str] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(primary_key=True)
    t: Mapped[float] = mapped_column(Float)  # when the call first entered it, to seek the recording

    call: Mapped[Call] = relationship(back_populates="nodes")

    __table_args__ = (Index("ix_call_nodes_node_flow_call_id", "node", "flow", "call_id"), {"sqlite_with_rowid": False})


class CallTag(Base):
    """A QA tag on a call."""

    __tablename__ = "call_tags"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(primary_key=True)

    call: Mapped[Call] = relationship(back_populates="tags")

    __table_args__ = (Index("ix_call_tags_tag_call_id", "tag", "call_id"), {"sqlite_with_rowid": False})


class Recording(Base):
    """An audio file under the recordings folder; `call_id` is null for an orphan."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[Optional[str]] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    uniqueid: Mapped[Optional[str]]  # the channel it was made on, to link it when the call row comes later
    path: Mapped[str] = mapped_column(unique=True)  # relative to the recordings folder, with '/'
    size: Mapped[Optional[int]] = mapped_column(BigInteger)  # bytes
    duration: Mapped[Optional[float]] = mapped_column(Float)  # seconds
    checksum: Mapped[Optional[str]]  # sha256, hex
    peaks: Mapped[Optional[list[Any]]]  # waveform for the player
    created_at: Mapped[dt.datetime]
    indexed_at: Mapped[Optional[dt.datetime]]
    deleted_at: Mapped[Optional[dt.datetime]]  # the file was purged (retention); the row stays for the audit

    call: Mapped[Optional[Call]] = relationship(back_populates="recordings")

    __table_args__ = (
        Index("ix_recordings_call_id", "call_id"),
        Index("ix_recordings_uniqueid", "uniqueid"),
    )


class QueueEvent(Base):
    """An Asterisk queue event from AMI (QueueCallerJoin, AgentConnect, ...), kept as it came."""

    __tablename__ = "queue_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str]  # the AMI event name
    uniqueid: Mapped[Optional[str]]  # the caller's channel: a Call's uniqueid
    queue: Mapped[Optional[str]]
    at: Mapped[dt.datetime]
    data: Mapped[dict[str, Any]]  # the other fields of the AMI event

    __table_args__ = (
        Index("ix_queue_events_uniqueid", "uniqueid"),
        Index("ix_queue_events_queue_at", "queue", "at"),
    )


ROLES = ("qa", "admin")


class User(Base):
    """An account of the QA web app. Only a password hash is stored (werkzeug's scrypt)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    password_hash: Mapped[str]
    role: Mapped[str]  # one of ROLES
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime]
    # sessions begun before this moment are over (set at log-out: a copied cookie dies too)
    sessions_after: Mapped[Optional[dt.datetime]]


class Review(Base):
    """A QA reviewer's scorecard of one call: a score per criterion of config.yaml, notes."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    reviewer: Mapped[str]  # the user name
    scores: Mapped[dict[str, Any]]  # {criterion key: score}, absent criteria were not applicable
    total: Mapped[Optional[float]] = mapped_column(Float)  # share of the possible points, 0..1
    notes: Mapped[str] = mapped_column(default="")
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    # one scorecard per reviewer and call: two first saves at once cannot both land
    __table_args__ = (Index("ix_reviews_call_id_reviewer", "call_id", "reviewer", unique=True),
                      Index("ix_reviews_created_at", "created_at"))


class Hold(Base):
    """A call whose recording retention must not delete: under review, a complaint, a dispute."""

    __tablename__ = "holds"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str]
    placed_by: Mapped[str]
    placed_at: Mapped[dt.datetime]


class SurveyCount(Base):
    """How many calls reached a survey node: the live line's sampling counter (every N-th call is
    asked), kept here so it survives a restart and several engines share it."""

    __tablename__ = "survey_counts"

    flow: Mapped[str] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger)


class AuditEntry(Base):
    """Who did what, when: every play and download of a recording, logins, scores, purges."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime]
    user: Mapped[Optional[str]]  # None for the command line's own actions (purge)
    action: Mapped[str]  # play, download, login, login_failed, review, hold, release, purge, ...
    call_id: Mapped[Optional[str]]  # no foreign key: the entry outlives the call
    recording_id: Mapped[Optional[int]]
    address: Mapped[Optional[str]]  # the web client's IP address
    detail: Mapped[str] = mapped_column(default="")

    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_call_id", "call_id"))


CALLBACK_STATUSES = ("pending", "dialling", "done", "failed", "expired", "cancelled")
ATTEMPT_RESULTS = ("answered", "busy", "no answer", "failed", "interrupted")


class Callback(Base):
    """A call-back a caller booked: whom to call, for which queue, their place in line and
    the promise; `status` moves pending -> dialling -> done, or back to pending for another
    try, or to failed / expired / cancelled. No foreign key to `calls`: the booking is
    stored while the call runs, before the call-records writer has written its row."""

    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str]  # the call it was booked on
    number: Mapped[str]  # digits with an optional leading '+': checked before it is stored
    department: Mapped[str]
    queue: Mapped[str]
    schedule: Mapped[Optional[str]]  # dialled only while this schedule of config.yaml is open
    place_at: Mapped[dt.datetime]  # when the caller joined the queue: their place in line
    booked_at: Mapped[dt.datetime]
    due_by: Mapped[dt.datetime]  # the promise
    status: Mapped[str] = mapped_column(default="pending")  # one of CALLBACK_STATUSES
    attempts: Mapped[int] = mapped_column(default=0)  # tries made
    max_attempts: Mapped[int] = mapped_column(default=3)
    retry_pause: Mapped[float] = mapped_column(Float, default=300.0)  # seconds
    priority: Mapped[int] = mapped_column(default=1)  # the customer's queue priority
    next_at: Mapped[dt.datetime]  # not tried before this moment (booking, or the last try + the pause)
    updated_at: Mapped[dt.datetime]
    finished_at: Mapped[Optional[dt.datetime]]
    note: Mapped[str] = mapped_column(default="")  # why it ended so (failed, expired, cancelled by whom)
    # the Asterisk (config.yaml asterisk.nodes) whose queue it waits in and whose AMI dials it;
    # None: booked with one Asterisk, or before nodes were named (the first node dials it)
    node: Mapped[Optional[str]] = mapped_column(default=None)

    tries: Mapped[list["CallbackAttempt"]] = relationship(back_populates="callback", order_by="CallbackAttempt.seq",
                                                          cascade="all, delete-orphan", passive_deletes=True)

    __table_args__ = (
        Index("ix_callbacks_status_place_at", "status", "place_at"),  # the scheduler: pending, oldest place first
        Index("ix_callbacks_call_id", "call_id"),
        Index("ix_callbacks_booked_at", "booked_at"),  # the dashboard's period
    )


class CallbackAttempt(Base):
    """One try at a call-back: the customer's phone rang (or not), and what came of it."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"))
    seq: Mapped[int]  # 1, 2, ... within the call-back
    reason: Mapped[str]  # why it was dialled then: "turn" (an agent free, nobody ahead) or "due" (the promise)
    owner: Mapped[str]  # the engine process that dialled it (host:pid:random), for the record
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[Optional[dt.datetime]]
    result: Mapped[Optional[str]]  # one of ATTEMPT_RESULTS; null while it rings
    asterisk_reason: Mapped[Optional[str]]  # OriginateResponse's Reason code (4 answered, 5 busy, 3 no answer, ...)
    detail: Mapped[str] = mapped_column(default="")
    uniqueid: Mapped[Optional[str]]  # the call-back channel's
    channel: Mapped[Optional[str]]

    callback: Mapped[Callback] = relationship(back_populates="tries")

    __table_args__ = (
        Index("ix_callback_attempts_callback_id_seq", "callback_id", "seq", unique=True),
        Index("ix_callback_attempts_result", "result"),
    )


class EngineBeat(Base):
    """A running `ivr serve` process and its heartbeat: the engine updates `seen_at` every few
    seconds. The open calls of an engine whose heartbeat stopped are closed as interrupted by
    whichever engine finds it (ivr.store.engines); a live engine's calls are never touched."""

    __tablename__ = "engines"

    id: Mapped[str] = mapped_column(primary_key=True)  # host:pid:random, as in calls.engine_id
    host: Mapped[str]  # the machine: host name and pid namespace, to check the pid of a crashed engine
    pid: Mapped[int]
    started_at: Mapped[dt.datetime]
    seen_at: Mapped[dt.datetime]  # the last heartbeat


class WebhookDelivery(Base):
    """An ended call waiting for (or done with) its POST to the CRM webhook: the outbox.

    Written in the transaction that stores the call's end, one row per call (a call ended
    twice, by its engine and by a repair, is queued once). The body is built when it is
    sent, from the call as stored then, so a recording indexed meanwhile is in it."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    delivery_id: Mapped[str] = mapped_column(unique=True)  # random, the same on every try: the receiver's key to drop repeats
    created_at: Mapped[dt.datetime]
    next_at: Mapped[dt.datetime]  # not tried before this moment
    attempts: Mapped[int] = mapped_column(default=0)  # POSTs made
    claimed_until: Mapped[Optional[dt.datetime]]  # a deliverer is posting it (a lease; SQLite's claim)
    delivered_at: Mapped[Optional[dt.datetime]]  # a 2xx came back
    last_status: Mapped[Optional[int]]  # the receiver's last HTTP status (None: no answer)
    last_error: Mapped[Optional[str]]  # a short reason: never the secret, never the receiver's body

    # the deliverer asks for undelivered rows that are due, oldest first
    __table_args__ = (Index("ix_webhook_deliveries_delivered_at_next_at", "delivered_at", "next_at"),)


class ApiToken(Base):
    """A token of the QA app's JSON API, made for one user: only its SHA-256 is stored (the
    token is 32 random bytes, so a slow hash adds nothing), shown once when made."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str]  # what it is for, e.g. "crm sync"
    token_hash: Mapped[str] = mapped_column(unique=True)  # sha256 hex of the token
    prefix: Mapped[str]  # the token's first characters, to tell tokens apart in a list
    created_at: Mapped[dt.datetime]
    last_used_at: Mapped[Optional[dt.datetime]]
    revoked_at: Mapped[Optional[dt.datetime]]

    __table_args__ = (Index("ix_api_tokens_user_id", "user_id"),)
