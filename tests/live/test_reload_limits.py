"""A reload that meets a hostile flow file (past a limit of ivr.yamldoc.limits) keeps the
running flows, says which file and why, and takes no longer than a normal reload."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from ivr.errors import IvrError
from ivr.live.reload import FlowReloader

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def installation(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "flows", tmp_path / "flows", ignore=shutil.ignore_patterns("*.test.yaml"))
    return tmp_path


def _laughs() -> str:
    lines = ["flow: main", "languages: [en]", "start: k0", "prompts:", "  p: {en: hi}", "defaults:",
             "  l0: &l0 {type: hangup, prompt: p}"]
    lines += [f"  l{n}: &l{n} {{" + ", ".join(f"k{j}: *l{n - 1}" for j in range(10)) + "}" for n in range(1, 9)]
    return "\n".join([*lines, "nodes: {" + ", ".join(f"k{j}: *l8" for j in range(10)) + "}"]) + "\n"


@pytest.mark.parametrize("hostile", ["laughs", "huge"])
def test_a_reload_past_a_limit_keeps_the_running_flows(installation, caplog, hostile):
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    running = reloader.load()
    main = installation / "flows" / "main.yaml"
    if hostile == "laughs":
        main.write_text(_laughs(), encoding="utf-8")
    else:
        with open(main, "ab") as out:  # the running flow, with 60 MB of comment lines after it
            out.write(b"\n" + (b"#" * 99 + b"\n") * 600_000)
    start = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="ivr.live.reload"):
        assert reloader.reload() is False
    assert time.monotonic() - start < 3
    assert reloader.current() is running
    assert running.flows["main"].nodes  # the flows of before still answer calls
    refused = [r.getMessage() for r in caplog.records]
    why = "billion laughs" if hostile == "laughs" else "the file is 60.0 MB"
    assert any(m.startswith("reload refused: ") and "main.yaml:" in m and why in m for m in refused), refused
    assert any("the running flows stay" in m for m in refused)


def test_ivr_serve_does_not_start_on_a_hostile_flow_and_says_which(installation, caplog):
    (installation / "flows" / "laughs.yaml").write_text(_laughs().replace("flow: main", "flow: laughs"), encoding="utf-8")
    reloader = FlowReloader([installation / "flows"], installation / "config.yaml")
    start = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="ivr.live.reload"), pytest.raises(IvrError, match="the flows have errors"):
        reloader.load()
    assert time.monotonic() - start < 3
    assert any("laughs.yaml:12:" in r.getMessage() and "billion laughs" in r.getMessage() for r in caplog.records)
