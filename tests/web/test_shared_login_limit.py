"""The log-in rate limit across several QA web apps on one PostgreSQL: failed log-ins are
counted in the database, and attempts at one name go one at a time across the apps, so
guesses sent to three apps at the same moment get 5 tries in all, not 5 per app or one
per request."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from ivr.store.models import AuditEntry
from ivr.web import auth, create_app
from ivr.web.security import MAX_FAILURES_PER_NAME
from ivr.web.users import add_user

from .support import csrf_of, make_installation

APPS, GUESSES_EACH = 3, 4


@pytest.fixture(scope="module")
def postgres():
    from ivr.testbed import postgres as pgserver

    try:
        server = pgserver.start_postgres()
    except pgserver.PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


def test_guesses_sent_to_three_apps_at_once_get_five_tries_in_all(postgres, tmp_path, monkeypatch):
    # the apps run in one process here: each request gets a lock of its own, as in a process of
    # its own, so only what the database holds keeps them apart
    monkeypatch.setattr(auth, "_name_lock", lambda name: threading.Lock())
    url = postgres.create_database()
    try:
        config = make_installation(tmp_path, database=url)
        apps = [create_app(config, testing=True) for _ in range(APPS)]  # three processes' worth of apps
        add_user(apps[0].extensions["ivr"].engine, "anna", "qa-password-1", "qa")
        clients = []
        for n in range(APPS * GUESSES_EACH):
            client = apps[n % APPS].test_client()
            clients.append((client, csrf_of(client.get("/login").get_data(as_text=True))))
        start = threading.Barrier(len(clients))
        answers: list[int] = []
        lock = threading.Lock()

        def guess(client, token, n):
            start.wait()
            status = client.post("/login", data={"name": "anna", "password": f"wrong-guess-{n}",
                                                 "csrf_token": token}).status_code
            with lock:
                answers.append(status)

        threads = [threading.Thread(target=guess, args=(c, t, n)) for n, (c, t) in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        # the right password is refused too now, by every app: the lock is the database's
        late = apps[1].test_client()
        refused = late.post("/login", data={"name": "anna", "password": "qa-password-1",
                                            "csrf_token": csrf_of(late.get("/login").get_data(as_text=True))})
        with apps[0].extensions["ivr"].engine.connect() as conn:
            actions = Counter(conn.execute(sa.select(AuditEntry.action)).scalars())
        for app in apps:
            app.extensions["ivr"].engine.dispose()
    finally:
        postgres.drop_database(url)
    assert Counter(answers) == {401: MAX_FAILURES_PER_NAME, 429: APPS * GUESSES_EACH - MAX_FAILURES_PER_NAME}
    assert actions["login_failed"] == MAX_FAILURES_PER_NAME
    assert refused.status_code == 429 and actions["login"] == 0
