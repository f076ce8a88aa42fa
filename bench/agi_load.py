"""FastAGI load generator: plays Asterisk's side of FastAGI over loopback against `ivr serve`
(SQLite storing every call), the same-wire floor, panoramisk's FastAGI and pyst2 (a process
per call), all on the same call, and prints one table side by side.

    .venv/bin/python bench/agi_load.py                      # every mode, every server (~5 min)
    .venv/bin/python bench/agi_load.py --mode burst --servers ivr,floor --json out.json

The call is the bench flow (bench/agi_load_flow.yaml): a welcome, a menu where the caller
presses 2, a transfer to a queue. First one call goes through `ivr serve` and every command
line it sends is recorded; the floor and the peers then send exactly those lines, so they
follow the engine when its commands change. The latency of a command is the gap a caller
hears: from the moment the generator wrote the previous reply (or the environment block) to
the moment the command arrived; prompts playing and the queue are not part of it.

Modes: burst (N calls, C at once, every reply at once), steady (R new calls a second for D
seconds, prompts of ~4 s +-10 %, the queue ~2 s; the first 3 s are a warm-up left out),
spike (N calls at once, prompts of ~4 s). The figures are printed last; the exit status is
0 whatever they are (a benchmark, not a test), 1 only when the script itself broke.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agi_load_asterisk import Behaviour  # noqa: E402
from agi_load_run import WARMUP_SECONDS, Measured, Plan, Target, run  # noqa: E402
from agi_load_servers import (  # noqa: E402
    BenchError, Server, process_cpu_seconds, pyst2_argv, start_floor, start_ivr, start_panoramisk, wait_stored,
    workspace,
)

MODES = ("burst", "steady", "spike")
SERVERS = ("ivr", "floor", "panoramisk", "pyst2")
PYST2_AT_ONCE = 200  # processes at once: 5,000 Python processes would swamp the machine
PYST2_CALLS = 1000  # calls of a burst: enough for a rate, and it ends in a minute


def behaviour_for(mode: str, args: argparse.Namespace, recordings: str) -> Behaviour:
    prompt = args.prompt_seconds if args.prompt_seconds is not None else (0.0 if mode == "burst" else 4.0)
    queue = args.queue_seconds if args.queue_seconds is not None else (0.0 if mode == "burst" else 2.0)
    return Behaviour(prompt, queue, jitter=0.1 if prompt else 0.0, recordings=recordings)


def plan_for(mode: str, args: argparse.Namespace) -> Plan:
    if mode == "burst":
        return Plan("burst", calls=args.calls or 3000, concurrency=args.concurrency, timeout=args.timeout)
    if mode == "steady":
        return Plan("steady", rate=args.rate, duration=args.duration, warmup=min(WARMUP_SECONDS, args.duration / 2),
                    timeout=args.timeout)
    return Plan("spike", calls=args.calls or 5000, timeout=args.timeout)


def call_seconds(commands: list[str], behaviour: Behaviour) -> float:
    """How long one call lasts when the server takes no time: its prompts and its queue."""
    prompts = sum(1 for c in commands if c.upper().startswith("STREAM FILE"))
    queues = sum(1 for c in commands if c.upper().startswith('EXEC "QUEUE"') or c.upper().startswith("EXEC QUEUE"))
    return prompts * behaviour.prompt_seconds + queues * behaviour.queue_seconds


def pyst2_plan(plan: Plan, commands: list[str], behaviour: Behaviour) -> tuple[Plan, Optional[str]]:
    """pyst2 runs a process per call: at most PYST2_AT_ONCE at once, and what that allows."""
    if plan.mode == "burst":
        capped = Plan("burst", calls=min(plan.calls, PYST2_CALLS), concurrency=min(plan.concurrency, PYST2_AT_ONCE),
                      timeout=plan.timeout)
    elif plan.mode == "spike":
        capped = Plan("spike", calls=min(plan.calls, PYST2_AT_ONCE), timeout=plan.timeout)
    else:
        most = PYST2_AT_ONCE / max(call_seconds(commands, behaviour), 0.1)  # rate that keeps <= the cap up
        capped = Plan("steady", rate=min(plan.rate, most), duration=plan.duration, warmup=plan.warmup,
                      timeout=plan.timeout)
    if capped == plan:
        return plan, None
    what = {"burst": f"{capped.calls} calls, {capped.concurrency} at once",
            "spike": f"{capped.calls} calls at once",
            "steady": f"{capped.rate:.0f} new calls/s"}[plan.mode]
    return capped, f"pyst2 {plan.mode}: capped to {what} (a process per call; at most {PYST2_AT_ONCE} at once)"


async def record_commands() -> tuple[list[str], Path]:
    """One call through `ivr serve`: the command lines it sent, written to a file for the floor and peers."""
    server = await start_ivr()
    try:
        lines: list[str] = []
        measured = await run(Target(port=server.port), Plan("burst", calls=1, concurrency=1),
                             Behaviour(recordings=str(server.folder / "recordings")), record=lines)
    finally:
        server.stop()
    if measured.tally.failed or not lines:
        raise BenchError(f"the recording call through `ivr serve` failed: {measured.tally.failures}; "
                         f"log {server.log}")
    path = server.folder / "commands.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return lines, path


async def measure(mode: str, name: str, args: argparse.Namespace, commands: list[str], commands_file: Path) -> dict:
    plan = plan_for(mode, args)
    folder = workspace()
    behaviour = behaviour_for(mode, args, str(folder / "recordings"))
    row: dict[str, Any] = {"mode": mode, "server": name, "notes": [], "load_before": round(os.getloadavg()[0], 1)}
    server: Optional[Server] = None
    stack = contextlib.ExitStack()
    try:
        if name == "pyst2":
            plan, note = pyst2_plan(plan, commands, behaviour)
            if note:
                row["notes"].append(note)
            folder.mkdir(parents=True, exist_ok=True)
            errors = stack.enter_context(open(folder / "pyst2.log", "wb"))  # what the scripts say when they fail
            target = Target(argv=pyst2_argv(commands_file), stderr=errors)
        else:
            start = {"ivr": lambda: start_ivr(folder), "floor": lambda: start_floor(commands_file, folder),
                     "panoramisk": lambda: start_panoramisk(commands_file, folder)}[name]
            server = await start()
            target = Target(port=server.port)
        cpu_before = server.cpu_seconds() if server else None
        generator_before = _own_cpu()
        measured = await run(target, plan, behaviour, expected_commands=len(commands))
        row.update(_figures(measured))
        row["generator_cpu_s"] = round(_own_cpu() - generator_before, 2)
        row["plan"] = {k: v for k, v in vars(plan).items() if v}
        if server is not None and server.database is not None:
            waited = time.monotonic()
            stored = await wait_stored(server.database, measured.tally.placed)
            # the writer may hold a rush's records until the rush is over: say how long after
            # the last call they were all in the database (to the 0.2 s the check polls at)
            row["stored_after_s"] = round(time.monotonic() - waited, 1)
            row["stored"] = stored.calls
            row["stored_outcomes"] = stored.outcomes
            row["stored_events"] = stored.events
            if stored.calls != measured.tally.placed:
                row["notes"].append(f"{name} {mode}: {stored.calls} calls stored of {measured.tally.placed} placed")
        if server is not None:
            row["peak_rss_mb"] = _round(server.peak_rss_mb())
            row["peak_rss_is"] = "VmHWM of the server process"
            after = server.cpu_seconds()
            row["server_cpu_s"] = round(after - cpu_before, 2) if after is not None and cpu_before is not None else None
        else:
            row["peak_rss_mb"] = _round(measured.peak_children_mb)
            row["peak_rss_is"] = "peak of the summed VmRSS of the live per-call processes, sampled every 50 ms"
            row["server_cpu_s"] = None
    except BenchError as exc:
        row.update({"error": str(exc), "failed": None})
        row["notes"].append(f"{name} {mode}: {str(exc).splitlines()[0]}")
    finally:
        stack.close()
        if server is not None:
            server.stop()
    row["ok"] = "error" not in row and row.get("failed") == 0 and row.get("stored", row.get("placed")) == row.get("placed")
    if row.get("failures"):
        row["notes"].append(f"{name} {mode}: failed calls {row['failures']}")
    if row.get("unknown_commands"):
        row["notes"].append(f"{name} {mode}: unknown commands {row['unknown_commands']}")
    if row["ok"]:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        row["notes"].append(f"{name} {mode}: the server's folder and log are kept in {folder}")
    return row


def _figures(m: Measured) -> dict[str, Any]:
    t = m.tally
    return {
        "placed": t.placed, "completed": t.completed, "failed": t.failed, "failures": t.failures,
        "unknown_commands": t.unknown_commands, "closed_without_hangup": t.closed_without_hangup,
        "wall_s": round(m.wall, 3),
        "calls_per_s": round(t.completed / m.wall, 1) if m.wall > 0 else None,
        "commands_per_call": round(t.commands / t.placed, 2) if t.placed else None,
        "latencies_measured": len(t.latencies),
        "p50_ms": _round(m.percentile(0.50), 3), "p99_ms": _round(m.percentile(0.99), 3),
        "max_ms": _round(m.percentile(1.0), 3),
    }


def _own_cpu() -> float:
    return process_cpu_seconds(os.getpid()) or 0.0


def _round(value: Optional[float], digits: int = 1) -> Optional[float]:
    return None if value is None else round(value, digits)


def compare(rows: list[dict]) -> list[str]:
    """Ratios to the floor on every row, and the issue's targets for `ivr serve`."""
    lines = []
    for mode in MODES:
        floor = next((r for r in rows if r["mode"] == mode and r["server"] == "floor" and r.get("calls_per_s")), None)
        ivr = next((r for r in rows if r["mode"] == mode and r["server"] == "ivr" and r.get("calls_per_s")), None)
        for row in rows:
            if row["mode"] == mode and floor and row.get("calls_per_s") and row["server"] != "floor":
                row["calls_per_s_vs_floor"] = round(row["calls_per_s"] / floor["calls_per_s"], 2)
                if floor.get("p99_ms"):
                    row["p99_vs_floor"] = round(row["p99_ms"] / floor["p99_ms"], 2)
        if not ivr:
            continue
        if mode == "burst" and floor:
            ratio = ivr["calls_per_s_vs_floor"]
            lines.append(f"target burst: ivr serve {ivr['calls_per_s']:,.0f} calls/s = {ratio:.2f}x the floor's "
                         f"(>= 0.8x): {_verdict(ratio >= 0.8)}")
        if mode == "steady":
            lines.append(f"target steady: ivr serve p99 {_ms(ivr['p99_ms'])} ms (< 5 ms): {_verdict(ivr['p99_ms'] < 5)}")
        if mode == "spike" and floor:
            ratio = ivr["p99_vs_floor"]
            rss = ivr.get("peak_rss_mb") or 0
            lines.append(f"target spike: ivr serve p99 {_ms(ivr['p99_ms'])} ms = {ratio:.2f}x the floor's (<= 2x), "
                         f"{rss:.0f} MB resident (< 150 MB): {_verdict(ratio <= 2 and rss < 150)}")
    return lines


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def table(rows: list[dict]) -> str:
    head = ["mode", "server", "calls", "calls/s", "p50 ms", "p99 ms", "max ms", "cmd/call", "failed", "peak MB",
            "CPU s", "stored", "stored after s", "calls/s vs floor", "p99 vs floor", "run"]
    body = []
    for r in rows:
        body.append([r["mode"], r["server"], _n(r.get("placed")), _n(r.get("calls_per_s")), _ms(r.get("p50_ms")),
                     _ms(r.get("p99_ms")), _ms(r.get("max_ms")), _n(r.get("commands_per_call"), 1),
                     _n(r.get("failed")), _n(r.get("peak_rss_mb")), _n(r.get("server_cpu_s"), 1),
                     _n(r.get("stored")), _n(r.get("stored_after_s"), 1), _x(r.get("calls_per_s_vs_floor")), _x(r.get("p99_vs_floor")),
                     "ok" if r["ok"] else "FAIL"])
    widths = [max(len(str(c)) for c in column) for column in zip(head, *body)]
    lines = ["  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [head, *body]]
    return "\n".join(lines)


def _n(value: Optional[float], digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ms(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def _x(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def raise_file_limit(needed: int) -> Optional[str]:
    """RLIMIT_NOFILE up to the hard limit (the servers, started from here, inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < needed:
        return (f"open files limited to {want} (hard limit); {needed} are needed for the calls at once: "
                f"raise the hard limit (ulimit -Hn) or place fewer calls")
    return None


async def bench(args: argparse.Namespace) -> dict:
    modes = MODES if args.mode == "all" else (args.mode,)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for name in servers:
        if name not in SERVERS:
            raise SystemExit(f"--servers: no server {name!r}; the servers are {', '.join(SERVERS)}")
    at_once = max(args.calls or 5000, args.concurrency, int(args.rate * 12)) if "spike" in modes else args.concurrency
    notes = [n for n in [raise_file_limit(at_once + 1000)] if n]
    commands, commands_file = await record_commands()
    print(f"recorded from ivr serve: {len(commands)} commands a call", flush=True)
    rows = []
    try:
        for mode in modes:
            for name in servers:
                print(f"running {mode} against {name} ...", flush=True)
                rows.append(await measure(mode, name, args, commands, commands_file))
    finally:
        shutil.rmtree(commands_file.parent, ignore_errors=True)
    targets = compare(rows)
    notes += [n for r in rows for n in r["notes"]]
    notes.append("load average of the machine (1 min) before each run: "
                 + ", ".join(f"{r['mode']} {r['server']} {r['load_before']}" for r in rows))
    notes.append(f"the generator is one asyncio process sharing the machine's {os.cpu_count()} cores with the server; "
                 f"latency = from the generator's reply to the server's next command; peak MB of pyst2 = the summed "
                 f"resident memory of its live per-call processes")
    return {"commands": commands, "rows": rows, "targets": targets, "notes": notes,
            "settings": {k: v for k, v in vars(args).items() if k != "json"}, "cpus": os.cpu_count()}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: " + ",".join(SERVERS))
    parser.add_argument("--calls", type=int, help="burst: calls in all (3,000); spike: calls at once (5,000)")
    parser.add_argument("--concurrency", type=int, default=200, help="burst: calls at once")
    parser.add_argument("--rate", type=float, default=300.0, help="steady: new calls a second")
    parser.add_argument("--duration", type=float, default=20.0, help="steady: seconds of placing calls")
    parser.add_argument("--prompt-seconds", type=float, help="how long a prompt plays (burst 0, else 4; +-10 %%)")
    parser.add_argument("--queue-seconds", type=float, help="how long the queue holds the call (burst 0, else 2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="a call with no command for this long fails")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(bench(args))
    except BenchError as exc:
        print(f"agi_load: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print()
    for line in result["notes"] + result["targets"]:
        print(line)
    print(table(result["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
