"""`ivr web` and `ivr users`: serve the QA web app, manage its accounts."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ivr.settings.config import installation_config
from ivr.errors import WebError
from ivr.store.models import ROLES


def _config(ctx: click.Context):
    return installation_config((ctx.find_root().obj or {}).get("config"))


@click.command()
@click.option("--host", help="Address to listen on (default: config.yaml web.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: config.yaml web.port, 5000).")
@click.option("--index-every", type=click.FloatRange(0), default=60.0, show_default=True,
              help="Seconds between runs of the recordings index in the background; 0: never.")
@click.option("--purge-every", type=click.FloatRange(0), default=3600.0, show_default=True,
              help="Seconds between runs of the retention purge (recordings.retention_days) and of the prune of "
                   "delivered webhook rows (crm.webhook.keep_delivered) in the background, the first at start; "
                   "0: never (run `ivr recordings purge` and `ivr webhook prune` from cron instead).")
@click.pass_context
def web(ctx: click.Context, host: Optional[str], port: Optional[int], index_every: float, purge_every: float) -> None:
    """Serve the QA web app (calls, recordings, scorecards, dashboard)."""
    import logging

    from waitress import serve as waitress_serve

    from ivr.web import create_app
    from ivr.web.housekeeping import IndexWatch, PruneWatch, index_once, prune_outbox_once, purge_once, repeat

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = _config(ctx)
    watch = IndexWatch() if index_every > 0 else None
    pruning = PruneWatch() if purge_every > 0 and config.crm.keep_delivered is not None else None
    app = create_app(config, index=watch, outbox=pruning)
    host = host if host is not None else config.web.host
    port = port if port is not None else config.web.port
    if not app.config["SESSION_COOKIE_SECURE"] and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo("warning: cookies are not marked Secure; put the app behind HTTPS "
                   "(config.yaml web.secure_cookies: true) before others use it", err=True)
    if index_every > 0:
        repeat("recordings index", index_every, lambda: index_once(config, watch))
    if purge_every > 0 and config.recordings.retention_days is None:
        logging.getLogger("ivr.web.housekeeping").info(
            "retention purge off: recordings.retention_days is null in config.yaml (recordings are kept for ever)")
    elif purge_every > 0:
        repeat("retention purge", purge_every, lambda: purge_once(config))
    if purge_every > 0 and pruning is None:
        logging.getLogger("ivr.web.housekeeping").info(
            "webhook outbox prune off: crm.webhook.keep_delivered is null in config.yaml "
            "(delivered rows are kept for ever)")
    elif pruning is not None:
        repeat("webhook outbox prune", purge_every, lambda: prune_outbox_once(config, pruning))
    click.echo(f"QA web app on http://{host}:{port}/  (Ctrl+C stops it); health and metrics on "
               f"http://{host}:{port}/health/live, /health/ready, /metrics")
    try:
        waitress_serve(app, host=host, port=port, threads=8, ident="ivr", _quiet=True)
    except OSError as exc:
        raise WebError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@click.group()
def users() -> None:
    """Accounts of the QA web app."""


def _engine(ctx: click.Context):
    from ivr.store.db import database_url, init_db

    return init_db(database_url(_config(ctx)))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # a script's pipe: the first line is the password (its line break is not part of it)
        line = sys.stdin.readline()
        if not line:
            raise WebError("--password-stdin: nothing came on standard input")
        return line.rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="qa: review calls; admin: also the audit log.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str, password_stdin: bool) -> None:
    """Add an account; asks for its password (never an argument: it would show in `ps`)."""
    from ivr.web.users import add_user, check_new_password

    password = _read_password(password_stdin)
    check_new_password(password)
    user = add_user(_engine(ctx), name, password, role)
    click.echo(f"user {user.name} added ({user.role})")


@users.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.pass_context
def users_password(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a new password; the user's open sessions end."""
    from ivr.web.users import set_password

    set_password(_engine(ctx), name, _read_password(password_stdin))
    click.echo(f"password of {name} changed")


@users.command("disable")
@click.argument("name")
@click.pass_context
def users_disable(ctx: click.Context, name: str) -> None:
    """Lock an account out (its sessions end); `enable` lets it in again."""
    from ivr.web.users import set_active

    set_active(_engine(ctx), name, False)
    click.echo(f"user {name} disabled")


@users.command("enable")
@click.argument("name")
@click.pass_context
def users_enable(ctx: click.Context, name: str) -> None:
    from ivr.web.users import set_active

    set_active(_engine(ctx), name, True)
    click.echo(f"user {name} enabled")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    from ivr.web.users import list_users

    for user in list_users(_engine(ctx)):
        click.echo(f"{user.name}\t{user.role}\t{'active' if user.active else 'disabled'}")


@users.group("token")
def users_token() -> None:
    """Tokens of the JSON API (/api/v1): each acts as its user, with the user's role."""


@users_token.command("create")
@click.argument("name")
@click.option("--label", default="api", show_default=True, help="What the token is for, e.g. \"crm sync\".")
@click.pass_context
def token_create(ctx: click.Context, name: str, label: str) -> None:
    """Make an API token for user NAME and print it: once, it is stored only hashed."""
    from ivr.web.tokens import create_token

    info, token = create_token(_engine(ctx), name, label)
    click.echo(f"token {info.id} of {info.user} ({info.name}); send it as Authorization: Bearer <token>. "
               "It is shown this once:", err=True)
    click.echo(token)


@users_token.command("list")
@click.argument("name", required=False)
@click.pass_context
def token_list(ctx: click.Context, name: Optional[str]) -> None:
    """The API tokens (of user NAME): id, user, label, start of the token, made, last used, revoked."""
    from ivr.web.tokens import list_tokens

    def shown(moment):
        return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"

    for info in list_tokens(_engine(ctx), name):
        click.echo(f"{info.id}\t{info.user}\t{info.name}\t{info.prefix}…\tmade {shown(info.created_at)}\t"
                   f"used {shown(info.last_used_at)}\t{'revoked ' + shown(info.revoked_at) if info.revoked_at else 'active'}")


@users_token.command("revoke")
@click.argument("token_id", type=click.IntRange(1))
@click.pass_context
def token_revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke API token TOKEN_ID (from `list`): requests with it are refused from now on."""
    from ivr.web.tokens import revoke_token

    info = revoke_token(_engine(ctx), token_id)
    click.echo(f"token {info.id} of {info.user} ({info.name}) revoked")
