"""Shared fixtures: a small installation (config) and simulated calls of inline flows.

`run_flow(text, keys=..., ...)` compiles a flow with `compile_text` and runs one call of
it with `ivr.simulation.simulate.simulate`; every call it returns has already been checked
for the invariants every call must keep (tests/helpers.py `check_events`). Plain helpers
live in tests/helpers.py, which tests import by its own name.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import pytest
import yaml

from helpers import check_events, compile_flows, write_config
from ivr.engine import Engine
from ivr.engine.sampling import SurveySampler
from ivr.settings.config import Config
from ivr.simulation.simulate import SimulatedCall, simulate

RunFlow = Callable[..., SimulatedCall]


@pytest.fixture(scope="session")
def config(tmp_path_factory) -> Config:
    return write_config(tmp_path_factory.mktemp("install"))


@pytest.fixture
def run_flow(config) -> RunFlow:
    """run_flow(text, keys="1 2", *, extra=(other flow texts), sampler=None, config=None, **simulate kwargs)."""

    def run(text: str, keys: Any = None, *, extra: Iterable[str] = (), sampler: Optional[SurveySampler] = None,
            config_: Optional[Config] = None, **kwargs: Any) -> SimulatedCall:
        cfg = config_ or config
        flows = compile_flows(cfg, text, *extra)
        engine = Engine(flows, cfg, sampler=sampler)
        result = simulate(engine, yaml.safe_load(text)["flow"], keys=keys, **kwargs)
        check_events(result.call)
        return result

    return run
