"""asterisk.agi.shutdown_grace in config.yaml: the seconds calls in progress get when `ivr
serve` stops (10 s unless set); a value that is no duration, or past 10 minutes, is an error
at config.yaml:line:col; `ivr serve --grace` wins over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import ConfigError
from ivr.live.serve import build_runtime
from ivr.settings.config import load_config

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, agi: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"asterisk:\n  agi: {agi}\n"
                    "departments:\n  sales: {queue: sales, members: [PJSIP/101]}\n"
                    "  support: {queue: support, members: [PJSIP/104]}\n", encoding="utf-8")
    return path


def test_the_default_and_a_set_grace(tmp_path):
    assert load_config(_config(tmp_path, "{host: 127.0.0.1, port: 4573}")).asterisk.agi.shutdown_grace == 10.0
    assert load_config(_config(tmp_path, "{port: 4573, shutdown_grace: 30s}")).asterisk.agi.shutdown_grace == 30.0
    assert load_config(REPO / "config.yaml").asterisk.agi.shutdown_grace == 10.0  # the example installation says so


@pytest.mark.parametrize("value, message", [
    ("ten", 'config.yaml:2:42: AGI shutdown_grace must be a duration such as 10s, not "ten"'),
    ("1h", "config.yaml:2:42: AGI shutdown_grace must be at most 600s (10m)"),
])
def test_a_wrong_grace_is_an_error_where_it_is_written(tmp_path, value, message):
    with pytest.raises(ConfigError) as raised:
        load_config(_config(tmp_path, f"{{host: 127.0.0.1, shutdown_grace: {value}}}"))
    assert message in str(raised.value)


def test_serve_grace_wins_over_config_yaml(tmp_path):
    config = _config(tmp_path, "{host: 127.0.0.1, port: 4573, shutdown_grace: 30s}")
    flows = REPO / "bench" / "agi_load_flow.yaml"
    assert build_runtime([flows], config, ami=False, store=False).grace == 30.0
    assert build_runtime([flows], config, ami=False, store=False, grace=1.5).grace == 1.5
