"""Developer commands for the migrations: `python -m ivr.store revision -m "what changed"`.

`revision` writes a new migration into ivr/store/migrations/versions with what models.py
has that the newest migration lacks (compared on a scratch SQLite database); read it and
tidy it before committing. `upgrade [URL]` migrates a database (default: the
installation's) to the newest schema.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from alembic import command

from ivr.settings.config import find_config, load_config
from ivr.store.db import create_db_engine, database_url, init_db, migration_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.store")
    sub = parser.add_subparsers(dest="command", required=True)
    rev = sub.add_parser("revision", help="autogenerate a new migration from models.py")
    rev.add_argument("-m", "--message", required=True)
    up = sub.add_parser("upgrade", help="migrate a database to the newest schema")
    up.add_argument("url", nargs="?")
    args = parser.parse_args(argv)
    if args.command == "upgrade":
        url = args.url or database_url(load_config(find_config()))
        engine = init_db(url)
        print(f"migrated {engine.url.render_as_string(hide_password=True)}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        engine = init_db(create_db_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}"))
        cfg = migration_config()
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.revision(cfg, message=args.message, autogenerate=True)
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
