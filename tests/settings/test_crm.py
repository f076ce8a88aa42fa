"""config.yaml's `crm:` section: the webhook's url, secret (a reference, never a value),
timeout and QA link, each mistake at its file:line:col with a did-you-mean."""

from __future__ import annotations

import pytest

from ivr.settings.config import check_config
from ivr.settings.crm import CrmSettings, WebhookSettings


def findings_of(tmp_path, body: str):
    path = tmp_path / "config.yaml"
    path.write_text("crm:\n  webhook: " + body + "\n", encoding="utf-8")
    config, findings = check_config(path, "config.yaml")
    return config, [str(d) for d in findings]


def test_a_webhook_is_read_with_its_defaults(tmp_path):
    config, said = findings_of(tmp_path, '{url: "https://crm.example/ivr/calls", secret: "${IVR_WEBHOOK_SECRET}"}')
    assert said == []
    assert config.crm == CrmSettings(WebhookSettings("https://crm.example/ivr/calls", "${IVR_WEBHOOK_SECRET}", 5.0))
    assert config.crm.webhook.secret_variable == "IVR_WEBHOOK_SECRET"


def test_no_section_is_no_webhook(tmp_path):
    (tmp_path / "config.yaml").write_text("web: {port: 5000}\n")
    config, said = check_config(tmp_path / "config.yaml", "config.yaml")
    assert config.crm.webhook is None


@pytest.mark.parametrize("body, message", [
    ('{url: "ftp://crm.example/x", secret: "${S}"}', 'config.yaml:2:18: crm.webhook: url must start with http:// or https://, not "ftp://crm.example/x"'),
    ('{secret: "${S}"}', 'config.yaml:2:3: crm.webhook: url must be an http or https address such as "https://crm.example/ivr/calls", not nothing'),
    ('{url: "https://crm.example/x"}', 'config.yaml:2:3: crm.webhook needs a secret, such as "${IVR_WEBHOOK_SECRET}": the receiver checks each call\'s signature with it'),
    ('{url: "https://crm.example/x", secret: "hunter2-real-secret"}', 'config.yaml:2:51: the secret of crm.webhook must name an environment variable, such as "${IVR_WEBHOOK_SECRET}"; a secret is never written into config.yaml'),
    ('{url: "https://crm.example/x", secret: "${S}", timeout: 2m}', "config.yaml:2:68: timeout of crm.webhook must be from 500ms to 60s, not \"2m\""),
    ('{url: "https://crm.example/x", secret: "${S}", timout: 2s}', 'config.yaml:2:59: "timout" is no field of crm.webhook (did you mean "timeout"?)'),
    ('{url: "https://user:pw@crm.example/x", secret: "${S}"}', "config.yaml:2:18: crm.webhook: url must hold no user or password: the signature proves the sender"),
    ('{url: "https://crm.example/x", secret: "${S}", qa_url: "qa.example"}', 'config.yaml:2:67: crm.webhook: qa_url must start with http:// or https://, not "qa.example"'),
])
def test_each_mistake_is_reported_where_it_is(tmp_path, body, message):
    config, said = findings_of(tmp_path, body)
    assert config is None
    assert said == [message]
    assert "hunter2" not in " ".join(said)


def test_a_misspelt_section_or_field_gets_a_did_you_mean(tmp_path):
    (tmp_path / "config.yaml").write_text('crm:\n  webhok: {url: "https://x"}\n')
    _, said = check_config(tmp_path / "config.yaml", "config.yaml")
    assert [str(d) for d in said] == ['config.yaml:2:3: "webhok" is no field of crm (did you mean "webhook"?)']


def test_the_example_installation_documents_the_section(tmp_path):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "config.yaml").read_text()
    assert "# crm:" in text and "${IVR_WEBHOOK_SECRET}" in text


def test_keep_delivered_is_days_or_hours_or_null_and_thirty_days_by_default(tmp_path):
    base = '{url: "https://crm.example/ivr/calls", secret: "${S}"'
    for written, seconds in (("", 30 * 86400.0), (", keep_delivered: 7d", 7 * 86400.0),
                             (", keep_delivered: 36h", 36 * 3600.0), (", keep_delivered: null", None)):
        config, said = findings_of(tmp_path, base + written + "}")
        assert said == [], written
        assert config.crm.webhook.keep_delivered == seconds and config.crm.keep_delivered == seconds
    (tmp_path / "config.yaml").write_text("web: {port: 5000}\n")
    config, _ = check_config(tmp_path / "config.yaml", "config.yaml")
    assert config.crm.keep_delivered == 30 * 86400.0  # no webhook: the rows it delivered still go


@pytest.mark.parametrize("value, message", [
    ("30", "config.yaml:2:83: keep_delivered of crm.webhook must be days or hours such as 30d or 36h, or null to keep "
           "delivered rows for ever, not 30 (days: 30d)"),
    ("2w", "config.yaml:2:83: keep_delivered of crm.webhook must be days or hours such as 30d or 36h, or null to keep "
           'delivered rows for ever, not "2w"'),
    ("0d", 'config.yaml:2:83: keep_delivered of crm.webhook must be from 1h to 3650d, not "0d"'),
    ("5000d", 'config.yaml:2:83: keep_delivered of crm.webhook must be from 1h to 3650d, not "5000d"'),
])
def test_a_wrong_keep_delivered_is_reported_where_it_is(tmp_path, value, message):
    config, said = findings_of(tmp_path, '{url: "https://crm.example/ivr/calls", secret: "${S}", keep_delivered: '
                               + value + "}")
    assert config is None
    assert said == [message]


def test_a_misspelt_keep_delivered_gets_a_did_you_mean(tmp_path):
    _, said = findings_of(tmp_path, '{url: "https://crm.example/ivr/calls", secret: "${S}", keep_deliverd: 7d}')
    assert said == ['config.yaml:2:67: "keep_deliverd" is no field of crm.webhook (did you mean "keep_delivered"?)']
