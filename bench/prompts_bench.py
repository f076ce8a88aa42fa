"""How long prompts take: one espeak-ng rendering, and a rebuild that has nothing to do
(target: a no-op rebuild of 500 prompt files under 1 s).

1. Renders N distinct texts of typical prompt length (Polish and English, 40-130
   characters) one at a time through `EspeakBackend.render` (espeak-ng, then sox to 8 kHz
   mono) and reports the mean and the 95th percentile per prompt.
2. Generates a flow of 250 prompts in pl and en (500 prompt files) in a temporary
   installation, builds it once (real renderings, timed too), then times the no-op
   rebuild through the public path, `plan()` + `build()`, several times; and the whole
   `ivr prompts build` command (a new process: start-up, loading the flows, the manifest)
   for the same no-op.

    .venv/bin/python bench/prompts_bench.py [--texts 20] [--prompts 250] [--runs 5]

Prints the figures and PASS/FAIL against the target; the exit status is 0 either way
(2 when the first build fails: the benchmark itself is then wrong).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.flow.project import load_flows  # noqa: E402
from ivr.prompts.backends import EspeakBackend  # noqa: E402
from ivr.prompts.build import build, plan  # noqa: E402
from ivr.settings.prompts import PromptSettings  # noqa: E402

TARGET_SECONDS = 1.0
CONFIG = "prompts: {dir: prompts, tts: espeak-ng, voices: {pl: pl, en: en-gb}}\n"

WORDS = {
    "pl": ("dzień dobry dziękujemy za telefon wciśnij jeden dwa trzy aby połączyć się z działem sprzedaży "
           "reklamacje pomoc techniczna konsultant numer konta zamówienia dostawa faktura godziny otwarcia "
           "prosimy czekać rozmowa może być nagrywana wszyscy konsultanci są zajęci").split(),
    "en": ("hello thank you for calling press one two three to speak to our sales team complaints technical "
           "support an agent account number order delivery invoice opening hours please hold this call may be "
           "recorded all our agents are busy").split(),
}


def sentence(rng: random.Random, language: str, low: int = 40, high: int = 130) -> str:
    """A prompt-like text of low..high characters."""
    target = rng.randint(low, high)
    words: list[str] = []
    while len(" ".join(words)) < target:
        words.append(rng.choice(WORDS[language]))
    text = " ".join(words)[:high].rsplit(" ", 1)[0]
    return text[0].upper() + text[1:] + "."


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def bench_rendering(count: int) -> tuple[list[float], list[int]]:
    """Seconds per rendering of `count` distinct texts, one at a time; and their lengths."""
    rng = random.Random(7)
    backend = EspeakBackend(PromptSettings(voices={"pl": "pl", "en": "en-gb"}))
    texts = [(("pl", "en")[i % 2], sentence(rng, ("pl", "en")[i % 2]) + f" {i}") for i in range(count)]
    seconds = []
    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as folder:
        backend.render("Rozgrzewka.", "pl", Path(folder) / "warm.wav")  # page in espeak-ng's data once
        for i, (language, text) in enumerate(texts):
            started = time.perf_counter()
            backend.render(text, language, Path(folder) / f"{i}.wav")
            seconds.append(time.perf_counter() - started)
    return seconds, [len(t) for _, t in texts]


def generate_flow(prompts: int) -> str:
    """A flow of `prompts` prompts in pl and en, played one after another."""
    rng = random.Random(11)
    lines = ["flow: bench", "languages: [pl, en]", "start: n0", "prompts:"]
    for i in range(prompts):
        lines += [f"  p{i}:", f'    pl: "{sentence(rng, "pl")} {i}"', f'    en: "{sentence(rng, "en")} {i}"']
    lines.append("nodes:")
    for i in range(prompts):
        lines += [f"  n{i}:", "    type: play", f"    prompt: p{i}", f"    next: {f'n{i + 1}' if i + 1 < prompts else 'end'}"]
    lines += ["  end:", "    type: hangup"]
    return "\n".join(lines) + "\n"


def ivr_command() -> list[str]:
    script = Path(sys.executable).parent / "ivr"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from ivr.cli import main; main()"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20, help="distinct texts rendered one at a time")
    parser.add_argument("--prompts", type=int, default=250, help="prompts of the generated flow (x 2 languages)")
    parser.add_argument("--runs", type=int, default=5, help="timed no-op rebuilds (the command: at least 3)")
    args = parser.parse_args(argv)

    seconds, lengths = bench_rendering(args.texts)
    ms = [s * 1000 for s in seconds]
    print(f"espeak-ng rendering, {len(ms)} distinct prompts ({min(lengths)}-{max(lengths)} characters, pl and en), "
          f"one at a time: mean {statistics.mean(ms):.0f} ms, p95 {p95(ms):.0f} ms per prompt")

    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as folder:
        root = Path(folder)
        (root / "config.yaml").write_text(CONFIG, encoding="utf-8")
        (root / "flows").mkdir()
        (root / "flows" / "bench.yaml").write_text(generate_flow(args.prompts), encoding="utf-8")
        flows, config = load_flows([root / "flows"], root / "config.yaml")

        started = time.perf_counter()
        jobs = plan(flows.flows.values(), config)
        first = build(jobs, config)
        took = time.perf_counter() - started
        if first.errors or first.rendered != len(jobs):
            print(f"the first build failed: {len(first.errors)} errors, {first.rendered} of {len(jobs)} rendered", file=sys.stderr)
            for d in first.errors[:10]:
                print(f"  {d}", file=sys.stderr)
            return 2
        print(f"first build of {len(jobs)} prompt files ({args.prompts} prompts x pl, en): {took:.1f} s, "
              f"{took / len(jobs) * 1000:.0f} ms per file with the default workers")

        runs = []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = build(plan(flows.flows.values(), config), config)
            runs.append(time.perf_counter() - started)
            assert result.rendered == 0 and result.up_to_date == len(jobs), result
        verdict = "PASS" if min(runs) < TARGET_SECONDS else "FAIL"
        print(f"no-op rebuild of {len(jobs)} prompt files, plan()+build(): best {min(runs) * 1000:.0f} ms, "
              f"median {statistics.median(runs) * 1000:.0f} ms of {len(runs)}; target < {TARGET_SECONDS:g} s: {verdict}")

        command = [*ivr_command(), "prompts", "build"]
        env = {k: v for k, v in os.environ.items() if k != "IVR_CONFIG"}  # the temporary installation's config
        runs = []
        for _ in range(max(3, args.runs)):
            started = time.perf_counter()
            done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=env)
            runs.append(time.perf_counter() - started)
            if done.returncode != 0 or " 0 rendered" not in done.stdout:
                print(f"`ivr prompts build` did not find everything up to date:\n{done.stdout}{done.stderr}", file=sys.stderr)
                return 2
        verdict = "PASS" if min(runs) < TARGET_SECONDS else "FAIL"
        print(f"no-op `ivr prompts build` of {len(jobs)} prompt files (a new process: start-up, flows, manifest): "
              f"best {min(runs) * 1000:.0f} ms, median {statistics.median(runs) * 1000:.0f} ms of {len(runs)}; "
              f"target < {TARGET_SECONDS:g} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
