"""Alembic's entry point for the shipped migrations, run by `ivr.store.db.init_db`.

The caller hands over an open connection in `config.attributes["connection"]` (the
transaction is the caller's); without one, `sqlalchemy.url` of the config is used.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from ivr.store.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> Any:
    """Migrations spell the column types of SQLAlchemy itself, never the project's own."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(**kwargs: Any) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, render_item=render_item, **kwargs)


def run_online(connection: Any) -> None:
    configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run_online(config.attributes["connection"])
else:
    from ivr.store.db import create_db_engine

    engine = create_db_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        run_online(conn)
    engine.dispose()
