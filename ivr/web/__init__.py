"""The QA web app: a Flask app factory and its blueprints.

`create_app(config)` builds the app for one installation (its config.yaml): the database
is opened and migrated, the blueprints registered, and the security rules of
`ivr.web.security` put in front of every route (log-in, roles, CSRF, secure cookies,
security headers). `ivr web` serves it; tests use `app.test_client()`.

Blueprints, one concept each:
    auth       log-in and log-out
    calls      the calls list: search, filter, sort, pages
    call       one call: player, waveform, timeline, scorecard; the audio by recording id
    reports    scorecard reports per agent and department
    dashboard  charts and the menu tree with the callers' branches
    admin      the audit log (admins only)
    tokens     the API tokens page: list, make (shown once), revoke (ivr.web.token_pages)
    api        the read-only JSON API under /api/v1 (Bearer tokens: ivr.web.tokens)
    exports    CSV of the calls list and of the scorecards, with the list's filters
    health     /health/live, /health/ready and /metrics (Prometheus)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

from flask import Flask

from ivr.settings.config import Config, load_config
from ivr.web.context import WebContext
from ivr.web.security import install_security

log = logging.getLogger(__name__)


def create_app(config: Union[Config, str, Path, None] = None, *, testing: bool = False,
               overrides: Optional[dict[str, Any]] = None, index: Any = None, outbox: Any = None) -> Flask:
    """The QA web app of the installation whose config.yaml is `config` (a path, or loaded);
    `index`: the background recordings index's watch (ivr.web.housekeeping.IndexWatch),
    whose figures /metrics shows; `outbox`: the webhook outbox prune's (PruneWatch), likewise."""
    if not isinstance(config, Config):
        config = load_config(config)
    app = Flask(__name__)
    context = WebContext.open(config)
    app.extensions["ivr"] = context
    app.config.update(
        SECRET_KEY=context.secret_key(),
        TESTING=testing,
        MAX_CONTENT_LENGTH=1024 * 1024,  # forms only: nothing big is ever uploaded
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=context.secure_cookies(),
        SESSION_COOKIE_NAME="ivr_session",
        PERMANENT_SESSION_LIFETIME=8 * 3600,  # a working day; then log in again
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.config.update(overrides or {})
    if config.web.proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = config.web.proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    install_security(app)

    from ivr.web import admin, api, auth, call, calls, dashboard, exports, reports, token_pages

    for blueprint in (auth.bp, calls.bp, call.bp, reports.bp, dashboard.bp, admin.bp, api.bp, exports.bp,
                      token_pages.bp):
        app.register_blueprint(blueprint)
    app.jinja_env.globals.update(app_name="IVR QA")
    from ivr.web import filters

    filters.install(app)
    from ivr.web import health

    health.install(app, index, outbox)  # /health/live, /health/ready, /metrics
    return app
