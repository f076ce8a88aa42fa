"""`ivr webhook prune`: delete the CRM webhook outbox's delivered rows older than
config.yaml's `crm.webhook.keep_delivered`, as `ivr web` does every hour; for cron on
installations that run no `ivr web` housekeeping (`--purge-every 0`).

Exit 0 when the prune ran (also when nothing was due); errors of config.yaml or the
database take the exit codes of the rest of the `ivr` command.
"""

from __future__ import annotations

import click

from ivr.settings.config import installation_config


@click.group("webhook")
def webhook() -> None:
    """The CRM webhook's outbox in the database."""


@webhook.command("prune")
@click.option("--dry-run", is_flag=True, help="Delete nothing; count the rows that would go.")
@click.pass_context
def prune_command(ctx: click.Context, dry_run: bool) -> None:
    """Delete delivered rows older than crm.webhook.keep_delivered (30d); undelivered rows stay."""
    from ivr.store.outbox_prune import prune_outbox

    config = installation_config((ctx.find_root().obj or {}).get("config"))
    report = prune_outbox(config, dry_run=dry_run)
    click.echo(report.summary())
