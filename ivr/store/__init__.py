"""The record of every call: SQLAlchemy models, database sessions, migrations, the writer.

Live calls (and simulated ones, for demos) are written by `CallWriter`, the engine's
`on_event` sink, off the call path on a thread of its own. `DatabaseSurveyCounter` is the
live line's survey sampling counter, shared by every engine on the database.
`ivr.store.callbacks` keeps the call-backs callers booked and every try at dialling them;
`ivr.store.engines` the engines' heartbeats and the repair of calls a dead engine left open. `init_db(url)` migrates a
database to the newest schema; `database_url(config)` reads config.yaml's `database:`.
"""

from ivr.store.db import create_db_engine, database_url, init_db, session_factory
from ivr.store.models import Call, CallEvent, CallNode, CallTag, QueueEvent, Recording, SurveyCount
from ivr.store.survey_counts import DatabaseSurveyCounter
from ivr.store.writer import CallWriter, WriterStats

__all__ = [
    "Call", "CallEvent", "CallNode", "CallTag", "CallWriter", "DatabaseSurveyCounter", "QueueEvent", "Recording",
    "SurveyCount", "WriterStats",
    "create_db_engine", "database_url", "init_db", "session_factory",
]
