"""config.yaml's `crm:` section: the webhook every ended call is posted to.

    crm:
      webhook:
        url: https://crm.example/ivr/calls          # http or https
        secret: "${IVR_WEBHOOK_SECRET}"             # the HMAC key; only ever from the environment
        timeout: 5s                                 # one POST's limit (connect + answer)
        qa_url: https://qa.example                  # optional: links to the call's page in the QA app

No section (or no `webhook:`): nothing is posted and nothing is queued for posting. The
secret is kept as written (`${NAME}`) and read from the environment only by the deliverer,
so it never appears in a Config, a log line or an error.

`keep_delivered` is how long a delivered row stays in the outbox (days or hours: `30d`,
`36h`; null keeps them for ever); undelivered rows stay whatever their age. Without the
section the default applies too: rows delivered while a webhook was set do not stay for ever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from ivr.settings.sections import ENV_REFERENCE, duration_seconds, http_address_problem, secret_reference, section_fields
from ivr.yamldoc.diagnostics import Findings
from ivr.yamldoc.loader import describe

CRM_FIELDS = ("webhook",)
WEBHOOK_FIELDS = ("url", "secret", "timeout", "qa_url", "keep_delivered")
DEFAULT_TIMEOUT = 5.0
MIN_TIMEOUT, MAX_TIMEOUT = 0.5, 60.0
DAY = 86400.0
DEFAULT_KEEP_DELIVERED = 30 * DAY
# an hour at least: a row is what an admin clears to send a call again; ten years at most
MIN_KEEP, MAX_KEEP = 3600.0, 3650 * DAY
_KEEP = re.compile(r"^\s*(\d+)\s*(d|h)\s*$")
EXAMPLE = '{url: "https://crm.example/ivr/calls", secret: "${IVR_WEBHOOK_SECRET}", timeout: 5s}'


@dataclass(frozen=True)
class WebhookSettings:
    url: str  # where each ended call is POSTed (may hold ${NAME}, read when used)
    secret: str  # "${NAME}": the variable holding the HMAC key
    timeout: float = DEFAULT_TIMEOUT  # seconds, for one POST
    qa_url: Optional[str] = None  # the QA app's address as the CRM's users reach it
    keep_delivered: Optional[float] = DEFAULT_KEEP_DELIVERED  # seconds a delivered row stays; None: for ever

    @property
    def secret_variable(self) -> str:
        match = ENV_REFERENCE.fullmatch(self.secret)
        assert match is not None  # checked when parsed
        return match.group(1)


@dataclass(frozen=True)
class CrmSettings:
    webhook: Optional[WebhookSettings] = None

    @property
    def keep_delivered(self) -> Optional[float]:
        """Seconds a delivered row of the outbox stays (None: for ever); the default without a webhook."""
        return self.webhook.keep_delivered if self.webhook is not None else DEFAULT_KEEP_DELIVERED


def parse_crm_settings(value: Any, findings: Findings) -> CrmSettings:
    """The `crm:` section; every mistake reported with its place, the webhook left out then."""
    data = section_fields(value, ("crm",), CRM_FIELDS, "{webhook: " + EXAMPLE + "}", findings)
    if data is None or data.get("webhook") is None:
        return CrmSettings()
    return CrmSettings(_webhook(data["webhook"], findings))


def _webhook(value: Any, findings: Findings) -> Optional[WebhookSettings]:
    path = ("crm", "webhook")
    data = section_fields(value, path, WEBHOOK_FIELDS, EXAMPLE, findings)
    if data is None:
        return None
    before = len(findings.items)
    url = data.get("url")
    problem = address_problem(url, "url")
    if problem:
        findings.error(path + ("url",) if "url" in data else path, f"crm.webhook: {problem}", at_key="url" not in data)
    secret = None
    if "secret" not in data:
        findings.error(path, 'crm.webhook needs a secret, such as "${IVR_WEBHOOK_SECRET}": the receiver checks '
                             "each call's signature with it", at_key=True)
    else:
        secret = secret_reference(data["secret"], path + ("secret",), "the secret of crm.webhook",
                                  "${IVR_WEBHOOK_SECRET}", findings)
    timeout = DEFAULT_TIMEOUT
    if "timeout" in data:
        seconds = duration_seconds(data["timeout"], path + ("timeout",), "timeout of crm.webhook", "5s", findings)
        if seconds is not None and not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
            findings.error(path + ("timeout",), f"timeout of crm.webhook must be from 500ms to 60s, not {describe(data['timeout'])}")
        elif seconds is not None:
            timeout = seconds
    qa_url = data.get("qa_url")
    if qa_url is not None:
        problem = address_problem(qa_url, "qa_url", example='"https://qa.example"')
        if problem:
            findings.error(path + ("qa_url",), f"crm.webhook: {problem}")
    keep: Optional[float] = DEFAULT_KEEP_DELIVERED
    if "keep_delivered" in data:
        keep = _keep_delivered(data["keep_delivered"], path + ("keep_delivered",), findings)
    if any(d.is_error for d in findings.items[before:]) or secret is None:
        return None
    return WebhookSettings(str(url), secret, timeout, str(qa_url).rstrip("/") if qa_url else None, keep)


def _keep_delivered(value: Any, path: tuple, findings: Findings) -> Optional[float]:
    """Seconds of `30d` or `36h`; None for null (kept for ever) and once reported."""
    if value is None:
        return None
    match = _KEEP.match(value) if isinstance(value, str) else None
    if match is None:
        # a bare number is refused rather than guessed: 30 would be seconds elsewhere in config.yaml
        hint = f" (days: {value}d)" if isinstance(value, int) and not isinstance(value, bool) else ""
        findings.error(path, "keep_delivered of crm.webhook must be days or hours such as 30d or 36h, "
                             f"or null to keep delivered rows for ever, not {describe(value)}{hint}")
        return None
    seconds = int(match.group(1)) * (DAY if match.group(2) == "d" else 3600.0)
    if not MIN_KEEP <= seconds <= MAX_KEEP:
        findings.error(path, f"keep_delivered of crm.webhook must be from 1h to 3650d, not {describe(value)}")
        return None
    return seconds


def address_problem(url: Any, name: str, example: str = '"https://crm.example/ivr/calls"') -> Optional[str]:
    """What is wrong with an http(s) address, or None."""
    problem = http_address_problem(url, name, f"an http or https address such as {example}")
    if problem is not None:
        return problem
    parts = urlsplit(ENV_REFERENCE.sub("x", url))
    if parts.username or parts.password:
        return f"{name} must hold no user or password: the signature proves the sender"
    return None
