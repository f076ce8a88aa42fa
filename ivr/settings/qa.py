"""QA settings of config.yaml: the scorecard, recording retention and the web app.

```yaml
recordings: {dir: recordings, retention_days: 90}
web: {host: 127.0.0.1, port: 5000, secret_key: "${IVR_WEB_SECRET}"}
qa:
  scale: 5                    # every criterion is scored 0..scale
  criteria:                   # key: what the reviewer checks (in this order)
    greeting: Greeting and introduction
    diagnosis: Diagnosis of the need
    ...
```
Checked like the rest of config.yaml, so a mistake names file:line:col.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ivr.settings.sections import port_number, secret_reference, section_fields
from ivr.yamldoc.diagnostics import Findings
from ivr.yamldoc.loader import describe

# The steps of a good service call, the default scorecard.
DEFAULT_CRITERIA: dict[str, str] = {
    "greeting": "Greeting and introduction",
    "diagnosis": "Diagnosis of the need",
    "cause": "Cause found",
    "solution": "Solution proposed",
    "next_steps": "Next steps explained",
    "anything_else": '"Anything else I can help with?"',
    "logged": "Case logged",
}
QA_FIELDS = ("scale", "criteria")
WEB_FIELDS = ("host", "port", "secret_key", "secure_cookies", "proxies")
RECORDING_FIELDS = ("dir", "retention_days")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class QaSettings:
    scale: int = 5
    criteria: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CRITERIA))


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    secret_key: Optional[str] = None  # as written (a ${NAME} is read from the environment when used)
    secure_cookies: Optional[bool] = None  # None: Secure when served over HTTPS (not on 127.0.0.1 by HTTP)
    # reverse proxies in front of the app (0: none). With 1, the client's address is taken
    # from the last X-Forwarded-For entry, so the audit log and the log-in limit see the
    # real client; without a proxy these headers are ignored, as anyone can send them.
    proxies: int = 0


@dataclass(frozen=True)
class RecordingSettings:
    dir: str = "recordings"
    retention_days: Optional[int] = 90  # None: kept for ever


def parse_qa_settings(value: Any, findings: Findings) -> QaSettings:
    data = section_fields(value, ("qa",), QA_FIELDS, "{scale: 5, criteria: {greeting: Greeting}}", findings)
    if data is None:
        return QaSettings()
    settings: dict[str, Any] = {}
    scale = data.get("scale", 5)
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 10:
        findings.error(("qa", "scale"), f"scale must be a whole number from 1 to 10 (the top score), not {describe(scale)}")
    else:
        settings["scale"] = scale
    criteria = data.get("criteria")
    if criteria is not None:
        if not isinstance(criteria, dict) or not criteria:
            findings.error(("qa", "criteria"), f"criteria must map keys to what the reviewer checks, such as {{greeting: Greeting}}, not {describe(criteria)}")
        else:
            good = {}
            for key, label in criteria.items():
                if not isinstance(key, str) or not _KEY.match(key):
                    findings.error(("qa", "criteria", key), f"criterion key {describe(key)} must be a short lower-case word such as next_steps", at_key=True)
                elif not isinstance(label, str) or not label.strip():
                    findings.error(("qa", "criteria", key), f'criterion "{key}" needs a text saying what the reviewer checks, not {describe(label)}')
                else:
                    good[key] = label.strip()
            settings["criteria"] = good
    return QaSettings(**settings)


def parse_web_settings(value: Any, findings: Findings) -> WebSettings:
    data = section_fields(value, ("web",), WEB_FIELDS, "{host: 127.0.0.1, port: 5000}", findings)
    if data is None:
        return WebSettings()
    settings: dict[str, Any] = {}
    host = data.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host.strip():
        findings.error(("web", "host"), f"web host must be an address such as 127.0.0.1, not {describe(host)}")
    else:
        settings["host"] = host
    port = port_number(data.get("port", 5000), ("web", "port"), "web", findings)
    if port is not None:
        settings["port"] = port
    if data.get("secret_key") is not None:
        secret = secret_reference(data["secret_key"], ("web", "secret_key"), "secret_key", "${IVR_WEB_SECRET}", findings)
        if secret is not None:
            settings["secret_key"] = secret
    proxies = data.get("proxies", 0)
    if isinstance(proxies, bool) or not isinstance(proxies, int) or not 0 <= proxies <= 5:
        findings.error(("web", "proxies"), f"proxies must be the number of reverse proxies in front of the app, 0 to 5, not {describe(proxies)}")
    else:
        settings["proxies"] = proxies
    secure = data.get("secure_cookies")
    if secure is not None:
        if not isinstance(secure, bool):
            findings.error(("web", "secure_cookies"), f"secure_cookies must be true or false, not {describe(secure)}")
        else:
            settings["secure_cookies"] = secure
    return WebSettings(**settings)


def parse_recording_settings(value: Any, findings: Findings) -> RecordingSettings:
    data = section_fields(value, ("recordings",), RECORDING_FIELDS, "{dir: recordings, retention_days: 90}", findings)
    if data is None:
        return RecordingSettings()
    settings: dict[str, Any] = {}
    folder = data.get("dir", "recordings")
    if not isinstance(folder, str) or not folder.strip():
        findings.error(("recordings", "dir"), f"recordings dir must be a folder name, not {describe(folder)}")
    else:
        settings["dir"] = folder
    if "retention_days" in data:
        days = data["retention_days"]
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
            findings.error(("recordings", "retention_days"), f"retention_days must be a number of days (1 or more), or null to keep recordings for ever, not {describe(days)}")
        else:
            settings["retention_days"] = days
    return RecordingSettings(**settings)
