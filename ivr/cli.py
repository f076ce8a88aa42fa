"""The `ivr` command. Errors map to exit codes in one place: `main`."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Optional

import click

from ivr import __version__
from ivr import events as ev
from ivr.settings.config import find_config
from ivr.errors import DiagnosticsError, IvrError, JourneyFailure, UsageError
from ivr.flow.project import Report, display_path, load_flows
from ivr.installation import check_installation, load_installation


# Commands that live with their feature, imported only when run (or listed by --help):
# the web app's brings in Flask and the database layer, which would double the start-up
# time of every other command, `ivr validate` and `ivr simulate` included.
_LAZY = {
    "recordings": ("ivr.recordings.cli", "recordings"),  # ivr recordings index|purge
    "web": ("ivr.web.cli", "web"),
    "users": ("ivr.web.cli", "users"),
    "webhook": ("ivr.store.outbox_cli", "webhook"),  # ivr webhook prune
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY])

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name in _LAZY and name not in self.commands:
            module, attribute = _LAZY[name]
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def main(self, *args, **kwargs):  # type: ignore[override]
        # click handles its own usage errors; ours are turned into exit codes here
        kwargs.setdefault("standalone_mode", True)
        try:
            return super().main(*args, standalone_mode=False, **{k: v for k, v in kwargs.items() if k != "standalone_mode"})
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except DiagnosticsError as exc:
            for diagnostic in exc.diagnostics:
                click.echo(str(diagnostic), err=True)
            if not exc.diagnostics:
                click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except IvrError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="ivr")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="IVR_CONFIG",
              help="config.yaml of the installation (default: the nearest one upwards).")
@click.pass_context
def cli(ctx: click.Context, config_path: Optional[Path]) -> None:
    """IVR engine: YAML menu trees compiled into call flows."""
    if config_path is not None and not config_path.is_file():
        raise UsageError(f"{config_path}: no such config file")
    ctx.obj = {"config": config_path}


def main() -> None:
    cli()


def _config_path(ctx: click.Context, near: Path) -> Optional[Path]:
    return ctx.obj["config"] or find_config(near)


def _default_flows(ctx: click.Context) -> list[Path]:
    """flows/ beside the installation's config.yaml (--config, else the nearest one)."""
    config = _config_path(ctx, Path.cwd())
    folder = (config.parent if config else Path.cwd()) / "flows"
    if not folder.is_dir():
        raise UsageError("no flows/ folder here; name the flow files or folders to use")
    return [folder]


def _load(ctx: click.Context, flow_file: Path):
    """The FlowSet of a flow file's folder and the id of the flow in that file."""
    flows, config = load_installation([flow_file], _config_path(ctx, flow_file.parent))
    for flow in flows.flows.values():
        if Path(flow.file).resolve() == flow_file.resolve() or flow.file == display_path(flow_file):
            return flows, config, flow.id
    if flow_file.stem in flows:  # pragma: no cover - reached only through odd paths
        return flows, config, flow_file.stem
    raise UsageError(f"{flow_file}: holds no flow")


# --- validate ----------------------------------------------------------------------------
@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding.")
@click.pass_context
def validate(ctx: click.Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Check flows and config.yaml; print file:line:col findings, exit 1 on errors."""
    from ivr.asterisk.dialplan import silence_warning

    targets = list(paths) or _default_flows(ctx)
    first = targets[0] if targets[0].is_dir() else targets[0].parent
    report: Report = check_installation(targets, _config_path(ctx, first))
    for diagnostic in report.diagnostics:
        if as_json:
            click.echo(json.dumps(diagnostic.to_json(), ensure_ascii=False))
        else:
            click.echo(str(diagnostic))
    errors = len(report.errors)
    warnings = len(report.diagnostics) - errors
    silent = silence_warning(report.config) if not as_json else None  # --json: stdout holds findings only
    if silent:
        click.echo(f"warning: {silent}", err=True)
    if not as_json:
        summary = f"{len(report.files)} flow file(s) checked: {errors} error(s), {warnings} warning(s)"
        click.echo(click.style(summary, fg="red" if errors else "green"), err=True)
    if errors:
        sys.exit(1)


# --- schema ------------------------------------------------------------------------------
@cli.command()
def schema() -> None:
    """Print the JSON Schema of the flow format (for editors)."""
    from ivr.flow.jsonschema import flow_schema

    click.echo(json.dumps(flow_schema(), indent=2, ensure_ascii=False))


# --- graph -------------------------------------------------------------------------------
@cli.command()
@click.argument("flow_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The picture to write: .svg, .png, .pdf, or .dot for the Graphviz source.")
@click.pass_context
def graph(ctx: click.Context, flow_file: Path, output: Path) -> None:
    """Draw the menu tree of a flow."""
    from ivr.flow.graph import render, to_dot

    flows, _config, flow_id = _load(ctx, flow_file)
    source = to_dot(flows[flow_id])
    fmt = output.suffix.lstrip(".").lower() or "svg"
    if fmt == "dot":
        output.write_text(source, encoding="utf-8")
    elif fmt in ("svg", "png", "pdf"):
        output.write_bytes(render(source, fmt))
    else:
        raise UsageError(f"{output}: write .svg, .png, .pdf or .dot")
    click.echo(f"wrote {output}", err=True)


# --- simulate ----------------------------------------------------------------------------
@cli.command()
@click.argument("flow_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--keys", help='Keys pressed, one token per question: "1 - 123456#"; - is no key, hangup hangs up.')
@click.option("--caller", default="+48221234567", show_default=True, help="The caller's number.")
@click.option("--at", "at", help="The moment of the call, such as 2026-11-24T10:00:00+01:00 (default: now).")
@click.option("--language", help="The language the call starts in.")
@click.option("--queue", "queue", multiple=True, type=click.Choice([status.value for status in ev.TransferStatus]),
              help="How each transfer ends, in order (default: answered).")
@click.option("--json", "as_json", is_flag=True, help="Print one event per line as JSON.")
@click.option("--record", "record", type=click.Path(dir_okay=False, path_type=Path),
              help="Write what the caller heard (prompts, key tones, silence for waits) to this WAV.")
@click.pass_context
def simulate(ctx: click.Context, flow_file: Path, keys: Optional[str], caller: str, at: Optional[str],
             language: Optional[str], queue: tuple[str, ...], as_json: bool, record: Optional[Path]) -> None:
    """A call through a flow in the terminal: interactive, or scripted with --keys."""
    from ivr.channels.scripted import ScriptedChannel
    from ivr.channels.sim import SimChannel
    from ivr.clock import VirtualClock
    from ivr.engine import Engine
    from ivr.simulation.simulate import parse_time

    flows, config, flow_id = _load(ctx, flow_file)
    try:
        moment = parse_time(at)
    except ValueError:
        raise UsageError(f"--at {at!r} is not a time such as 2026-11-24T10:00:00+01:00") from None
    from ivr.lookup import HttpLookups

    engine = Engine(flows, config, lookups=HttpLookups())  # a lookup segment asks its server, as a live call does
    clock = VirtualClock(moment)
    if keys is None and not as_json:
        click.echo(click.style(f"Calling {flow_id} as {caller}. Enter keys as the caller would.", bold=True))
        channel: ScriptedChannel = SimChannel(None, clock, list(queue))
        printer = None
    else:
        channel = ScriptedChannel(keys or "", clock, list(queue))
        printer = _event_printer(flows, as_json)
    if record is not None:
        from ivr.channels.call_audio import CallAudio
        from ivr.prompts.library import PromptLibrary

        channel.audio = CallAudio(PromptLibrary(flows, config))
    call = asyncio.run(engine.run(channel, flow_id, caller=caller, language=language, clock=clock, on_event=printer))
    if channel.audio is not None and record is not None:
        channel.audio.write(record)
        click.echo(f"recorded {channel.audio.duration:.1f}s of the call to {record}", err=True)
    if not as_json:
        summary = f"outcome: {call.outcome}" + (f" ({call.department})" if call.department else "")
        summary += f" after {call.elapsed():.0f}s; path: {' > '.join(call.path)}"
        click.echo(click.style(summary, bold=True))
        if channel.unused_keys:
            click.echo(f"keys left unused: {' '.join(channel.unused_keys)}", err=True)


# Left out of the text view, to keep it to what the caller hears and does and what the
# flow decides: the call's start, its end (the summary line tells it), and what the next
# lines show anyway (a language by its prompts, a transfer by its queue's answer, ...).
_UNPRINTED = frozenset((ev.CALL_STARTED, ev.OUTCOME, ev.REPEAT, ev.LANGUAGE, ev.VARIABLE, ev.TRANSFER, ev.GOTO,
                        ev.RECORDING))


def _event_printer(flows, as_json: bool):
    def show(event: ev.Event) -> None:
        if as_json:
            click.echo(event.to_json())
            return
        if event.type in _UNPRINTED and not (event.type == ev.TRANSFER and event.data.get("overflow")):
            return  # an overflow's transfer is shown: its reason is nowhere else
        if event.type == ev.PROMPT:  # what the caller heard, in the language it was played in
            d = event.data
            text = flows[event.flow].prompts[d["prompt"]].text(d["language"])
            tag = click.style("[" + d["language"] + "]", fg="cyan")
            click.echo(click.style(f"{event.t:7.1f}s", dim=True) + f"  {tag} {text}")
            return
        for sentence in ev.sentences(event.to_dict()):
            stamp = click.style(f"{event.t - sentence.earlier:7.1f}s", dim=True)
            line = click.style(str(sentence), dim=True) if event.type == ev.NODE_ENTERED else str(sentence)
            click.echo(f"{stamp}  {line}")

    return show


# --- demo --------------------------------------------------------------------------------
@cli.command()
@click.option("--calls", type=click.IntRange(1, 100_000), default=200, show_default=True, help="Calls to add.")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="The calls fall in this many last days.")
@click.option("--seed", type=int, default=None, help="Another seed gives other callers and journeys (default: fixed).")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database holds calls already.")
@click.pass_context
def demo(ctx: click.Context, calls: int, days: int, seed: Optional[int], if_empty: bool) -> None:
    """Fill the installation with simulated calls and their recordings, for the QA web app."""
    from ivr.demo.run import DEFAULT_SEED, run_demo

    path = _config_path(ctx, Path.cwd())
    if path is None:
        raise UsageError("no config.yaml found; name it with --config")
    shown: list = []  # the progress bar on screen: calls, then the indexing of their recordings

    def advance(label: str, done: int, total: int) -> None:
        if not shown or shown[0].label != label:
            if shown:
                shown.pop().render_finish()
            shown.append(click.progressbar(length=total, label=label, file=sys.stderr).__enter__())
        shown[0].update(done - shown[0].pos)

    try:
        result = run_demo(path, calls=calls, seed=DEFAULT_SEED if seed is None else seed, days=days,
                          if_empty=if_empty, progress=lambda done, total: advance("simulating calls", done, total),
                          index_progress=lambda done, total: advance("indexing recordings", done, total))
    finally:
        if shown:
            shown[0].render_finish()
    click.echo(result.summary())


# --- prompts -----------------------------------------------------------------------------
@cli.group()
def prompts() -> None:
    """Render and check what callers hear."""


@prompts.command("build")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Render everything again, ignoring the cache.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), help="Renderings run at once (default: by CPU count).")
@click.pass_context
def prompts_build(ctx: click.Context, paths: tuple[Path, ...], force: bool, jobs: Optional[int]) -> None:
    """Render every prompt of every flow and language to 8 kHz mono WAV."""
    from ivr.prompts.build import build, plan, prompts_dir

    targets = list(paths) or _default_flows(ctx)
    flows, config = load_installation(targets, _config_path(ctx, targets[0] if targets[0].is_dir() else targets[0].parent))
    todo = plan(flows.flows.values(), config)
    with click.progressbar(length=len(todo), label="rendering prompts", file=sys.stderr) as bar:
        result = build(todo, config, workers=jobs, force=force, progress=bar.update)
    for diagnostic in result.errors:
        click.echo(str(diagnostic), err=True)
    click.echo(f"{len(todo)} prompt file(s) in {display_path(prompts_dir(config))}: {result.rendered} rendered, "
               f"{result.reused} from the cache, {result.up_to_date} up to date, {len(result.errors)} failed")
    if result.errors:
        sys.exit(1)


@prompts.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.pass_context
def prompts_check(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """List prompts lacking a language, bad recorded files, and prompts not built yet."""
    from ivr.prompts.check import check_prompts

    targets = list(paths) or _default_flows(ctx)
    first = targets[0] if targets[0].is_dir() else targets[0].parent
    report = check_installation(targets, _config_path(ctx, first))
    recorded = set(report.recorded)
    findings = [d for d in report.errors if ("prompt" in d.message or "recorded" in d.message) and d not in recorded]
    findings += check_prompts(report.flows.values(), report.config, report.recorded)
    for diagnostic in findings:
        click.echo(str(diagnostic))
    if findings:
        click.echo(click.style(f"{len(findings)} prompt problem(s)", fg="red"), err=True)
        sys.exit(1)
    click.echo(click.style("every prompt has every language, and is built", fg="green"), err=True)


# --- serve -------------------------------------------------------------------------------
@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--host", help="Address of the FastAGI server (default: config.yaml asterisk.agi.host).")
@click.option("--port", type=int, help="Port of the FastAGI server (default: config.yaml asterisk.agi.port).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True,
              help="debug also logs every call as it starts (its channel, caller and flow).")
@click.option("--grace", type=click.FloatRange(0, 600), metavar="SECONDS",
              help="At SIGTERM/SIGINT, the time calls in progress have to finish before they are ended as "
                   "interrupted (default: config.yaml asterisk.agi.shutdown_grace, 10 s).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Port of /health/live, /health/ready and /metrics (default: config.yaml asterisk.agi.metrics_port, "
                   "9573); 0: a free port, named in the log.")
@click.pass_context
def serve(ctx: click.Context, paths: tuple[Path, ...], host: Optional[str], port: Optional[int], log_level: str,
          grace: Optional[float], metrics_port: Optional[int]) -> None:
    """Run the live runtime: FastAGI for Asterisk, hot reload on SIGHUP or file change."""
    import logging

    from ivr.live.serve import build_runtime

    level = getattr(logging, log_level.upper())
    # the level is the engine's (`ivr` loggers): libraries stay at INFO, whose debug output
    # (every AMI event, with callers' names and numbers) is no operator's business
    logging.getLogger("ivr").setLevel(level)
    logging.basicConfig(level=max(level, logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    targets = list(paths) or _default_flows(ctx)
    runtime = build_runtime(targets, _config_path(ctx, targets[0] if targets[0].is_dir() else targets[0].parent),
                            host=host, port=port, grace=grace, metrics_port=metrics_port)
    from ivr.live.serve import serve_forever

    serve_forever(runtime)


# --- asterisk-config, testbed, call ---------------------------------------------------------
@cli.command("asterisk-config")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The folder to write extensions.conf, queues.conf and manager.conf into.")
@click.pass_context
def asterisk_config(ctx: click.Context, out_dir: Path) -> None:
    """Write the Asterisk dialplan, queues and manager user generated from config.yaml
    (and the flows/ beside it: a transfer node's announce_position turns on its queue's
    position announcements)."""
    from ivr.asterisk.dialplan import silence_warning, with_announcements, write_config
    from ivr.flow.announcements import announcing_departments
    from ivr.settings.config import load_config

    path = _config_path(ctx, Path.cwd())
    if path is None:
        raise UsageError("no config.yaml found; name it with --config")
    config = load_config(path)
    _check_lines(config, path)
    if (path.parent / "flows").is_dir():
        flows, config = load_flows([path.parent / "flows"], path)
        config = with_announcements(config, announcing_departments(flows.flows.values()))
    for written in write_config(config, out_dir):
        click.echo(f"wrote {display_path(written)}", err=True)
    if config.asterisk.multi_node:
        # uniqueids name calls in the records: without a systemname two nodes can mint the same
        click.echo("each node's folder is its /etc/asterisk files; set `systemname = <node>` under [options] "
                   "in each node's asterisk.conf (docs/nodes.md)", err=True)
    warning = silence_warning(config)
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _check_lines(config, path: Path) -> None:
    """The flows config.yaml's `lines` name exist in flows/ beside it (ConfigError, file:line:col)."""
    from ivr.errors import ConfigError
    from ivr.flow.lines import line_findings
    from ivr.flow.project import check_project

    if not config.lines.written():
        return
    folder = path.parent / "flows"
    if not folder.is_dir():
        raise UsageError(f"config.yaml's lines name flows, but there is no flows/ folder beside {display_path(path)} "
                         f"to find them in")
    report = check_project([folder], path)
    findings = line_findings(config, report.flow_ids)
    if findings:
        raise ConfigError(findings)


@cli.group()
def testbed() -> None:
    """The local Asterisk 22 test bed (a Debian sid root under .cache/)."""


def _testbed(ctx: click.Context):
    from ivr.testbed.server import Testbed

    return Testbed(ctx.obj["config"], log=lambda line: click.echo(line, err=True))


@testbed.command("start")
@click.pass_context
def testbed_start(ctx: click.Context) -> None:
    """Build (once) and start the test bed, or reload its configuration if it runs."""
    bed = _testbed(ctx).start()
    click.echo(f"test bed running: SIP 127.0.0.1:{bed.sip_port}, AMI {bed.ami_host}:{bed.ami_port} "
               f"(user {bed.ami_username}); place a call with `ivr call 1`")


@testbed.command("stop")
@click.pass_context
def testbed_stop(ctx: click.Context) -> None:
    """Stop the test bed and unmount its folders."""
    _testbed(ctx).stop()
    click.echo("test bed stopped")


@testbed.command("status")
@click.pass_context
def testbed_status(ctx: click.Context) -> None:
    """Say whether the test bed runs; exit 1 when it does not."""
    bed = _testbed(ctx)
    if not bed.running():
        click.echo("test bed not running (start it with `ivr testbed start`)")
        sys.exit(1)
    version = bed.rx("core show version").strip()
    click.echo(f"test bed running (pid {bed.pid()}): {version.split(' built')[0]}; "
               f"SIP 127.0.0.1:{bed.sip_port}, AMI {bed.ami_host}:{bed.ami_port}")


@cli.command("call")
@click.argument("keys", nargs=-1)
@click.option("--caller-name", default="IVR test caller", show_default=True, help="The caller's name.")
@click.option("--caller-id", default="48221234567", show_default=True, help="The caller's number.")
@click.option("--exten", default="100", show_default=True, help="The extension dialled.")
@click.option("--wait", type=click.FloatRange(0, 120),
              help="Fixed timers: seconds before each group of keys (default: keys are timed from the flow).")
@click.option("--hold", type=click.FloatRange(0, 3600), default=10.0, show_default=True,
              help="Seconds to stay on the line after the planned call ends (in the queue, after the voicemail "
                   "message, or when the flow ends; with fixed timers: after the last key), unless Asterisk "
                   "hangs up first.")
@click.option("--dry-run", is_flag=True, help="Print when each key would be pressed, and place no call.")
@click.pass_context
def call(ctx: click.Context, keys: tuple[str, ...], caller_name: str, caller_id: str, exten: str,
         wait: Optional[float], hold: float, dry_run: bool) -> None:
    """Place a real SIP call into the test bed that presses KEYS, e.g. 1 1 or "2 3 90012345#".

    Each key is pressed when the flow listens for it, planned by simulating the same call
    (this installation's flows and config, now, the same caller) with the built prompts;
    - lets a question time out. The call stays on the line until what was planned ends
    (the queue is reached, or the voicemail: then it leaves a short message), then --hold
    seconds more. With --wait, or waits such as 5s among KEYS, the keys go on fixed timers
    instead: --wait seconds (default 3) before each group, plus the waits.
    """
    from ivr.simulation.key_plan import VOICEMAIL, check_tokens
    from ivr.testbed.sipp import MESSAGE_AFTER_TONE, MESSAGE_SECONDS, check_caller, is_wait, parse_keys, place_call, timed_steps

    text = " ".join(keys)  # `ivr call 1 1` and `ivr call "1 1"` are the same call
    check_caller(caller_id, caller_name, exten)
    fixed = wait is not None or any(is_wait(token) for token in text.split())
    steps = parse_keys(text, 3.0 if wait is None else wait) if fixed else None
    if not fixed:
        check_tokens(text)
    bed = None if dry_run else _testbed(ctx)
    if bed is not None and not bed.running():
        raise UsageError("the test bed is not running; start it with `ivr testbed start`")
    if steps is None:
        plan = _plan_call(ctx, text, caller_id, exten)
        if plan.ending == VOICEMAIL:
            # after the tone (the plan's end is where the recording starts), a short message
            message_at = plan.ends_at + MESSAGE_AFTER_TONE
            steps = timed_steps(plan.presses, message_at=message_at)
            click.echo(f"then a {MESSAGE_SECONDS:g} s message for mailbox {plan.mailbox} at {message_at:.1f} s, "
                       f"and the caller hangs up {hold:g} s after it")
            hold += MESSAGE_SECONDS  # the message plays while the scenario goes on
        else:
            steps = timed_steps(plan.presses, until=plan.ends_at)
            click.echo(f"the caller hangs up {hold:g} s after the {plan.ending} ({plan.ends_at:.1f} s), "
                       "unless Asterisk does first")
    else:
        moment = 0.0
        for step in steps:
            moment += step.wait
            if step.key is not None:
                click.echo(f"key {step.key} at {moment:.1f} s (fixed timers)")
    if bed is None:
        return
    result = place_call(steps, port=bed.sip_port, exten=exten, caller_name=caller_name, caller_id=caller_id,
                        hold=hold)
    if not result.ok:
        click.echo(result.output, err=True)
        click.echo(click.style(f"call failed after {result.seconds:.1f}s", fg="red"), err=True)
        sys.exit(1)
    click.echo(f"call ended after {result.seconds:.1f}s (keys: {text or 'none'})")


def _plan_call(ctx: click.Context, keys: str, caller: str, exten: str = "100"):
    """The keys of `ivr call` timed from the installation's own flow (ivr.simulation.key_plan), printed."""
    from ivr.channels.call_audio import duration
    from ivr.engine import Engine
    from ivr.prompts.library import PromptLibrary
    from ivr.simulation.key_plan import plan_keys

    targets = _default_flows(ctx)
    flows, config = load_installation(targets, _config_path(ctx, Path.cwd()))
    start = config.lines.flow_for(exten)  # the flow config.yaml's lines give the number dialled
    if start not in flows:
        raise UsageError(f'the installation has no flow "{start}", which the test bed\'s calls to {exten} start in')
    library = PromptLibrary(flows, config)  # the built prompts, as Asterisk plays them
    from ivr.lookup import HttpLookups

    # a lookup segment asks its server now, as the call will: the plan takes the same path
    plan = plan_keys(Engine(flows, config, lookups=HttpLookups()), start, keys, caller=caller,
                     prompt_seconds=lambda prompt, language: duration(library.pcm(prompt, language)))
    click.echo(f"keys planned from flow {start} for a call from {caller} now, prompts as long as their audio:")
    for token in plan.tokens:
        click.echo(token.describe())
    if plan.department is not None:
        click.echo(f"then the call goes to {plan.department}")
    if plan.unused:
        click.echo(click.style(f"not pressed: {' '.join(plan.unused)}, which the flow does not ask for now "
                               f"(its way: {' > '.join(plan.path)})", fg="yellow"))
    return plan


# --- test --------------------------------------------------------------------------------
@cli.command(name="test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--coverage", "show_coverage", is_flag=True, help="List the branches no case took.")
@click.option("-v", "--verbose", is_flag=True, help="One line per case.")
@click.pass_context
def test_command(ctx: click.Context, paths: tuple[Path, ...], show_coverage: bool, verbose: bool) -> None:
    """Run the journey tests (*.test.yaml) next to the flows."""
    from ivr.simulation.journeys import coverage, run_files, find_journey_files

    targets = list(paths) or _default_flows(ctx)
    files = find_journey_files(targets)
    if not files:
        raise UsageError("no *.test.yaml files found")
    flow_dirs = sorted({f.parent for f in files})
    flows, config = load_installation(flow_dirs, _config_path(ctx, flow_dirs[0]))
    results, broken, seconds = run_files(files, flows, config, display_path)
    _report(results, broken, seconds, verbose)
    if show_coverage:
        _coverage_report(coverage(results, flows))
    if broken or not all(r.passed for r in results):
        raise JourneyFailure("journey tests failed")


def _report(results, broken, seconds: float, verbose: bool) -> None:
    by_file: dict[str, list] = {}
    for result in results:
        by_file.setdefault(result.case.file, []).append(result)
    for file, items in by_file.items():
        if verbose:
            for r in items:
                mark = click.style("PASSED", fg="green") if r.passed else click.style("FAILED", fg="red")
                click.echo(f"{r.case.id} {mark}")
        else:
            marks = "".join(click.style(".", fg="green") if r.passed else click.style("F", fg="red") for r in items)
            click.echo(f"{file} {marks}")
    failures = [r for r in results if not r.passed]
    if failures or broken:
        click.echo(click.style(" FAILURES ".center(72, "="), fg="red"))
    for diagnostic in broken:
        click.echo(str(diagnostic))
    for r in failures:
        click.echo(click.style(f" {r.case.id} ".center(72, "_"), fg="red"))
        click.echo(f"{r.case.file}:{r.case.line}:{r.case.column}: case \"{r.case.name}\"")
        for problem in r.problems:
            click.echo(f"  {problem}")
        if "path" in r.case.expect:
            click.echo(f"  expected path: {' > '.join(r.case.expect['path'])}")
        if r.call is not None:
            click.echo(f"  actual path:   {' > '.join(r.call.path)}")
            click.echo(f"  heard:         {', '.join(r.call.heard)}")
    passed = sum(r.passed for r in results)
    parts = []
    if failures:
        parts.append(f"{len(failures)} failed")
    parts.append(f"{passed} passed")
    if broken:
        parts.append(f"{len(broken)} error(s) in test files")
    colour = "red" if failures or broken else "green"
    click.echo(click.style(f" {', '.join(parts)} in {seconds:.2f}s ".center(72, "="), fg=colour))


def _coverage_report(report: dict) -> None:
    for flow_id, (edges, taken) in sorted(report.items()):
        share = 100.0 * len(taken) / len(edges) if edges else 100.0
        click.echo(f"coverage {flow_id}: {len(taken)}/{len(edges)} branches ({share:.0f}%)")
        for source, label in sorted(edges - taken):
            click.echo(f"  not taken: {source} --{label}-->")


if __name__ == "__main__":  # pragma: no cover
    main()
