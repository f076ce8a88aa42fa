"""`ivr recordings index` and `ivr recordings purge`.

Both exit 0 when all went well and 1 when a file could not be read or deleted (listed on
stderr as `path: reason`); errors of config.yaml or the database take the exit codes of
the rest of the `ivr` command.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Any, Iterable, Optional

import click

from ivr.settings.config import Config, installation_config

LISTED = 50  # lines of a list printed before "... and N more"


@click.group("recordings")
def recordings() -> None:
    """Index call recordings for QA, and delete them after the retention period."""


def _config(ctx: click.Context) -> Config:
    return installation_config((ctx.find_root().obj or {}).get("config"))


def _list(title: str, lines: Iterable[str], total: int, err: bool = False) -> None:
    lines = list(lines)
    if not total:
        return
    click.echo(f"{title}:", err=err)
    for line in lines[:LISTED]:
        click.echo(f"  {line}", err=err)
    if total > min(len(lines), LISTED):
        click.echo(f"  ... and {total - min(len(lines), LISTED)} more", err=err)


@recordings.command("index")
@click.option("-v", "--verbose", is_flag=True, help="Also list the files indexed and those still being written.")
@click.pass_context
def index_command(ctx: click.Context, verbose: bool) -> None:
    """Link recording files to their calls; store size, duration, checksum and waveform."""
    from ivr.recordings.index import index_recordings

    config = _config(ctx)
    with ExitStack() as stack:
        bar: Optional[Any] = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # the total is known once the folder has been walked
                bar = stack.enter_context(click.progressbar(length=total, label="indexing recordings",
                                                            file=sys.stderr))
            bar.update(done - bar.pos)

        report = index_recordings(config, progress=progress if sys.stderr.isatty() else None)
    if not report.folder_exists:
        click.echo(f"no recordings folder at {report.folder} yet", err=True)
    if verbose:
        _list("indexed", report.indexed, len(report.indexed))
        _list("still being written (left for the next run)", (f"{p.path}: {p.reason}" for p in report.pending),
              len(report.pending))
    _list("orphan files (no call found)", report.orphans, len(report.orphans))
    _list("calls without a file (newest first)",
          (f"{c.call_id}  {c.started_at:%Y-%m-%d %H:%M:%S} UTC  {c.source}" for c in report.calls_without_file),
          report.calls_without_file_count)
    _list("missing files (in the database, not in the folder)", report.missing, len(report.missing))
    for problem in report.errors:
        click.echo(str(problem), err=True)
    click.echo(report.summary())
    if report.errors:
        sys.exit(1)


@recordings.command("purge")
@click.option("--dry-run", is_flag=True, help="Change nothing; list what would be deleted.")
@click.pass_context
def purge_command(ctx: click.Context, dry_run: bool) -> None:
    """Delete recordings older than recordings.retention_days, except calls on hold."""
    from ivr.recordings.purge import purge_recordings

    config = _config(ctx)
    report = purge_recordings(config, dry_run=dry_run)
    if report.retention_days is None or report.cutoff is None:
        click.echo(report.summary())
        return
    _list(f"{'to delete' if dry_run else 'deleted'}", (p.path for p in report.deleted), len(report.deleted))
    _list("kept: their call is on hold", (f"{p.path} (call {p.call_id})" for p in report.held), len(report.held))
    for problem in report.errors:
        click.echo(str(problem), err=True)
    click.echo(report.summary())
    if report.errors:
        sys.exit(1)
