"""How long a 10,000-node flow takes to load, check and compile (target: under 1 s).

Generates one large flow file of a realistic mix (menus of 3-5 options, plays, inputs,
routes, transfers to the departments of config.yaml, hours on the office schedule,
call-backs, voicemail, a survey, hangups; every node reachable; prompts in pl and en),
then runs it through the public path, `check_project([file], config, siblings=False)`,
several times. The time spent reading YAML and reading config.yaml is measured inside
that same run, so the split adds up to the total.

    .venv/bin/python bench/compile_bench.py [--nodes 10000] [--runs 5] [--keep FILE]

Prints the figures and PASS/FAIL against the target; the exit status is 0 either way
(2 when the generated flow does not compile: the benchmark itself is then wrong).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.settings.config import load_config  # noqa: E402
from ivr.flow import project  # noqa: E402

TARGET_SECONDS = 1.0

# node type -> weight in the mix; leaves (hangup, voicemail) only while the tree can afford them
MIX = {"menu": 22, "play": 18, "transfer": 16, "input": 7, "route": 8, "hours": 6, "callback": 4,
       "voicemail": 5, "hangup": 8, "survey": 6}
WORDS_PL = "dzień dobry prosimy wybrać opcję sprzedaż reklamacje pomoc konto numer konsultant zamówienie dostawa faktura".split()
WORDS_EN = "hello please choose an option sales complaints support account number agent order delivery invoice".split()


def generate_flow(nodes: int, seed: int = 7) -> dict:
    """A flow of exactly `nodes` nodes, every one reachable from the start, no passive loop."""
    rng = random.Random(seed)
    departments = sorted(load_config(ROOT / "config.yaml").departments)
    prompts: dict[str, dict[str, str]] = {}
    defined: dict[str, dict] = {}

    def prompt(name: str) -> str:
        prompts[name] = {
            "pl": " ".join(rng.choices(WORDS_PL, k=rng.randint(6, 18))).capitalize() + ".",
            "en": " ".join(rng.choices(WORDS_EN, k=rng.randint(6, 18))).capitalize() + ".",
        }
        return name

    # fixed tail every branch can end in
    for name in ("invalid", "no_input", "goodbye_prompt", "nps"):
        prompt(name)
    fixed = {
        "goodbye": {"type": "hangup", "prompt": "goodbye_prompt"},
        "survey": {"type": "survey", "prompt": "nps", "scale": [0, 10], "sample": {"every": 10, "shorter_than": "2m"}, "next": "goodbye"},
    }
    budget = nodes - len(fixed)
    pending = ["n0"]  # referenced, not yet defined
    allocated = 1

    def fresh() -> str:
        nonlocal allocated
        if allocated >= budget:
            return "goodbye"
        name = f"n{allocated}"
        allocated += 1
        pending.append(name)
        return name

    types = list(MIX)
    weights = [MIX[t] for t in types]
    while pending:
        name = pending.pop(0)
        kind = rng.choices(types, weights)[0]
        if kind in ("hangup", "voicemail") and len(pending) < 20 and allocated < budget:
            kind = "menu"  # keep the tree growing until the budget is spent
        node: dict = {"type": kind}
        if kind == "menu":
            keys = rng.sample("0123456789", rng.randint(3, 5))
            node["prompt"] = prompt(f"p_{name}")
            node["options"] = {
                k: (fresh() if rng.random() < 0.8 else {"next": fresh(), "set": {"topic": f"t{k}"}}) for k in sorted(keys)
            }
            if rng.random() < 0.3:
                node["repeat_key"] = "*"
            node["on_fail"] = fresh() if rng.random() < 0.2 else "goodbye"
        elif kind == "play":
            node.update(prompt=prompt(f"p_{name}"), next=fresh())
        elif kind == "input":
            node.update(prompt=prompt(f"p_{name}"), min_digits=6, max_digits=10, terminator="#",
                        sensitive=rng.random() < 0.5, save_as="account", next=fresh(), on_fail="goodbye")
        elif kind == "route":
            conditions = [{"segment": "vip"}, {"var": "account", "matches": "^9"}, {"language": "en"}][: rng.randint(1, 3)]
            node.update(when=[{**c, "next": fresh()} for c in conditions], otherwise=fresh())
        elif kind == "hours":
            node.update(schedule="office", open=fresh(), closed=fresh())
            if rng.random() < 0.5:
                node["holiday"] = fresh()
        elif kind == "transfer":
            node.update(department=rng.choice(departments), announce_position=True, max_wait=f"{rng.randint(1, 5)}m",
                        on_timeout=fresh(), after="survey")
            if rng.random() < 0.5:
                node["prompt"] = prompt(f"p_{name}")
        elif kind == "callback":
            node.update(prompt=prompt(f"p_{name}"), department=rng.choice(departments), next="goodbye", declined=fresh())
        elif kind == "voicemail":
            node.update(prompt=prompt(f"p_{name}"), mailbox="general", max_length="2m", next="goodbye")
        elif kind == "survey":
            node.update(prompt=prompt(f"p_{name}"), scale=[0, 10], next=fresh())
        else:  # hangup
            node["prompt"] = prompt(f"p_{name}")
        defined[name] = node
    defined.update(fixed)
    return {
        "flow": "bench",
        "description": f"A generated flow of {len(defined)} nodes for the compile benchmark.",
        "languages": ["pl", "en"],
        "start": "n0",
        "defaults": {"timeout": "5s", "attempts": 3, "invalid_prompt": "invalid", "timeout_prompt": "no_input"},
        "prompts": prompts,
        "nodes": defined,
    }


class Timed:
    """Wraps a function of ivr.flow.project and adds up the seconds spent in it."""

    def __init__(self, name: str):
        self.name = name
        self.original = getattr(project, name)
        self.seconds = 0.0

    def __enter__(self) -> "Timed":
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(project, self.name, wrapper)
        return self

    def __exit__(self, *exc) -> None:
        setattr(project, self.name, self.original)


def run_once(path: Path, config: Path) -> tuple[float, float, float, project.Report]:
    """(total, yaml load, config.yaml) seconds of one check_project run, and its report."""
    with Timed("load_file") as load, Timed("check_config") as conf:
        start = time.perf_counter()
        report = project.check_project([path], config, siblings=False)
        total = time.perf_counter() - start
    return total, load.seconds, conf.seconds, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="also write the generated flow here")
    args = parser.parse_args(argv)

    data = generate_flow(args.nodes)
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=200)
    if args.keep:
        args.keep.write_text(text, encoding="utf-8")
    config = ROOT / "config.yaml"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(text, encoding="utf-8")
        runs = [run_once(path, config) for _ in range(args.runs)]

    report = runs[0][3]
    if report.errors or "bench" not in report.flows:
        print(f"the generated flow does not compile ({len(report.errors)} errors):", file=sys.stderr)
        for d in report.errors[:10]:
            print(f"  {d}", file=sys.stderr)
        return 2
    node_count = len(report.flows["bench"].nodes)
    kinds = {k: sum(1 for n in data["nodes"].values() if n["type"] == k) for k in MIX}
    print(f"flow: {node_count} nodes, {len(data['prompts'])} prompts, {len(text) / 1e6:.1f} MB of YAML, "
          f"{len(report.diagnostics)} findings (warnings)")
    print("mix: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))

    best = min(runs, key=lambda r: r[0])
    total, load, conf = best[0], best[1], best[2]
    median = statistics.median(r[0] for r in runs)
    verdict = "PASS" if total < TARGET_SECONDS else "FAIL"
    print(f"compile+check {node_count} nodes: total {total:.2f} s (load {load:.2f} s, check+compile {total - load - conf:.2f} s, "
          f"config.yaml {conf:.3f} s); best of {len(runs)}, median {median:.2f} s; target < {TARGET_SECONDS:g} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
