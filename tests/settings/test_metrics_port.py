"""asterisk.agi.metrics_host and metrics_port in config.yaml: where `ivr serve` serves
/health/live, /health/ready and /metrics (127.0.0.1:9573 unless set); a wrong value is an
error at config.yaml:line:col, with a did-you-mean for a misspelt key; `ivr serve
--metrics-port` wins over it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import cli
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


def test_the_defaults_and_set_values(tmp_path):
    agi = load_config(_config(tmp_path, "{host: 127.0.0.1, port: 4573}")).asterisk.agi
    assert (agi.metrics_host, agi.metrics_port) == ("127.0.0.1", 9573)
    agi = load_config(_config(tmp_path, "{port: 4573, metrics_host: 0.0.0.0, metrics_port: 9100}")).asterisk.agi
    assert (agi.metrics_host, agi.metrics_port) == ("0.0.0.0", 9100)
    example = load_config(REPO / "config.yaml").asterisk.agi
    assert (example.metrics_host, example.metrics_port) == ("127.0.0.1", 9573)


@pytest.mark.parametrize("agi, message", [
    ("{metrics_port: nine}", 'config.yaml:2:23: AGI metrics port must be a number from 1 to 65535, not "nine"'),
    ("{metrics_port: 70000}", "config.yaml:2:23: AGI metrics port must be a number from 1 to 65535, not 70000"),
    ("{port: 4573, metrics_port: 4573}",
     "config.yaml:2:35: AGI metrics_port must differ from the FastAGI port (4573): they are two servers"),
    ("{metrics_port: 9573, metrics_host: 'a b'}",
     "config.yaml:2:43: AGI metrics_host must be an IP address such as 127.0.0.1, not \"a b\""),
    ("{metric_port: 9100}", 'config.yaml:2:9: "metric_port" is no field of asterisk.agi (did you mean "metrics_port"?)'),
])
def test_a_wrong_value_is_an_error_where_it_is_written(tmp_path, agi, message):
    with pytest.raises(ConfigError) as raised:
        load_config(_config(tmp_path, agi))
    assert message in str(raised.value)


def test_serve_metrics_port_wins_over_config_yaml(tmp_path):
    config = _config(tmp_path, "{host: 127.0.0.1, port: 4573, metrics_port: 9100}")
    flows = REPO / "bench" / "agi_load_flow.yaml"
    assert build_runtime([flows], config, ami=False, store=False).metrics_port == 9100
    assert build_runtime([flows], config, ami=False, store=False, metrics_port=9200).metrics_port == 9200
    assert build_runtime([flows], config, ami=False, store=False, metrics_port=0).metrics_port == 0


def test_the_option_is_checked_and_documented():
    result = CliRunner().invoke(cli, ["serve", "--metrics-port", "70000"])
    assert result.exit_code == 2 and "--metrics-port" in result.output
    assert "/health/ready" in CliRunner().invoke(cli, ["serve", "--help"]).output
