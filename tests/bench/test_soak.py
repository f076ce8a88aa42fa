"""The soak (bench/soak.py) in its short form: one minute of synthetic calls through a real
`ivr serve` on a real PostgreSQL with every kind of fault injected once; and its fault plan."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from soak import FAULTS, plan_faults  # noqa: E402


@pytest.mark.parametrize("duration", [60.0, 600.0])
def test_every_fault_comes_one_at_a_time_restarts_in_the_first_half(duration):
    for seed in range(20):
        faults = plan_faults(duration, seed, warmup=10.0)
        assert {f.kind for f in faults} == set(FAULTS)
        assert all(f.at >= 10.0 and f.at + f.seconds <= duration for f in faults)
        for a, b in zip(faults, faults[1:]):
            assert a.at + a.seconds + 2.0 <= b.at, (seed, a, b)  # time to recover between two
        assert all(f.at < duration / 2 for f in faults if f.kind == "restart")
    assert len(plan_faults(600.0, 1, 10.0)) >= 40  # the full soak: about one a minute... or more


def readme_command() -> list[str]:
    """The soak's command as README.md shows it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [command] = re.findall(r"`(\.venv/bin/python bench/soak\.py[^`]*)`", readme)
    return command.split()


@pytest.mark.soak
def test_the_short_soak_loses_nothing():
    """Every call the engine started is stored with an outcome and all its events, through a
    restart, the database locked and cut off, the AMI cut off and hostile clients: the
    README's command, run as written (its faults come at random moments)."""
    argv = readme_command()
    assert argv[1:] == ["bench/soak.py", "--duration", "60"]
    done = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=600)
    print(done.stdout[-6000:], done.stderr[-3000:])
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0 and "PASS" in last, last or done.stderr[-2000:]
