"""HTTP lookups of caller segments (ivr.lookup) against a real HTTP server on loopback: what
is asked (the caller's number reduced to digits, URL-encoded; secrets from the environment),
what an answer means, and that a time-out, a refused connection, an HTTP error or a garbage
body is "not in the segment" within the time-out, logged once per failure spell."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from crm_server import CrmServer, closed_port
from ivr.engine.lookups import FAILED, MEMBER, NO_NUMBER, NOT_MEMBER, LookupAnswer, ask_guarded
from ivr.lookup import HttpLookups, lookup_number, read_answer, redact_url
from ivr.settings.segments import Lookup, Segment

PREMIUM = "+48225550101"
SLACK = 1.0  # a loaded machine's delay on top of a time-out; far less than the slow server's sleep


def gold(url: str, **settings) -> Segment:
    return Segment("gold", lookup=Lookup(url=url, **settings))


def ask(lookups: HttpLookups, segment: Segment, caller: str) -> LookupAnswer:
    return asyncio.run(lookups.ask(segment, caller))


@pytest.mark.parametrize("caller, sent", [
    ("+48 22 555 01 01", "+48225550101"),
    ("0048 (22) 555-01-01", "0048225550101"),
    ("601200300", "601200300"),
    ("", ""),
    ("anonymous", ""),
    ("1234&admin=1", ""),  # anything but a phone number's characters: nothing is asked
    ("601200300\r\nX-Injected: 1", ""),
    ("1" * 21, ""),
])
def test_only_a_phone_number_reaches_the_url(caller, sent):
    assert lookup_number(caller) == sent


def test_a_member_and_a_stranger_and_how_the_number_is_sent():
    with CrmServer("json", members={PREMIUM}) as crm:
        lookups = HttpLookups()
        segment = gold(crm.url())
        member = ask(lookups, segment, "+48 22 555 01 01")
        stranger = ask(lookups, segment, "+48 22 555 01 02")
    assert (member.result, member.error, member.cached) == (MEMBER, None, False)
    assert (stranger.result, stranger.error) == (NOT_MEMBER, None)  # 404: a number the CRM does not know
    assert [path for path, _ in crm.requests] == ["/vip?number=%2B48225550101", "/vip?number=%2B48225550102"]
    assert crm.numbers_asked() == [PREMIUM, "+48225550102"]


def test_a_caller_without_a_number_asks_nothing():
    with CrmServer("json", members={PREMIUM}) as crm:
        answer = ask(HttpLookups(), gold(crm.url()), "anonymous")
    assert answer.result == NO_NUMBER and crm.requests == []


def test_answer_status_reads_the_http_status():
    with CrmServer("status", members={PREMIUM}) as crm:
        lookups = HttpLookups()
        segment = gold(crm.url(), answer="status")
        assert ask(lookups, segment, PREMIUM).result == MEMBER
        assert ask(lookups, segment, "+48600100200").result == NOT_MEMBER


@pytest.mark.parametrize("answer, status, body, expected", [
    ("json", 200, b'{"segment": true}', (True, None)),
    ("json", 200, b'{"segment": false, "name": "x"}', (False, None)),
    ("json", 404, b"", (False, None)),
    ("json", 200, b'{"segment": "yes"}', (None, 'the answer has no "segment": true or false')),
    ("json", 200, b"[true]", (None, 'the answer has no "segment": true or false')),
    ("json", 200, b"<html>", (None, "the answer is no JSON")),
    ("json", 200, b"\xff\xfe", (None, "the answer is no JSON")),
    ("json", 503, b'{"segment": true}', (None, "HTTP 503")),
    ("json", 302, b"", (None, "HTTP 302")),
    ("status", 200, b"anything", (True, None)),
    ("status", 404, b"", (False, None)),
    ("status", 500, b"", (None, "HTTP 500")),
])
def test_what_an_answer_means(answer, status, body, expected):
    assert read_answer(Lookup("http://crm/{number}", answer=answer), status, body) == expected


@pytest.mark.parametrize("mode, error", [
    ("slow", "no answer within 300 ms"),
    ("garbage", "the answer is no JSON"),
    ("error", "HTTP 500"),
])
def test_a_failing_server_is_not_in_the_segment_within_the_timeout(mode, error):
    with CrmServer(mode, members={PREMIUM}, delay=5.0) as crm:  # the slow one sleeps far past the time-out
        started = time.monotonic()
        answer = ask(HttpLookups(), gold(crm.url(), timeout=0.3), PREMIUM)
        waited = time.monotonic() - started
    assert (answer.result, answer.error) == (FAILED, error)
    assert waited < 0.3 + SLACK, waited  # the time-out, not the server's 5 s
    assert answer.ms / 1000 <= waited and answer.ms < 300 + SLACK * 1000, (answer.ms, waited)


def test_a_refused_connection_is_not_in_the_segment_at_once():
    started = time.monotonic()
    answer = ask(HttpLookups(), gold(f"http://127.0.0.1:{closed_port()}/vip?number={{number}}", timeout=0.5), PREMIUM)
    assert answer.result == FAILED and answer.error == "cannot connect: Connection refused", answer
    assert time.monotonic() - started < 0.5 + SLACK  # refused at once; at most the time-out


def test_answers_are_kept_for_the_cache_time_and_failures_are_not():
    with CrmServer("json", members={PREMIUM}) as crm:
        lookups = HttpLookups()
        first, again = ask(lookups, gold(crm.url()), PREMIUM), ask(lookups, gold(crm.url()), PREMIUM)
        assert (first.cached, again.cached, again.result) == (False, True, MEMBER)
        assert len(crm.requests) == 1
        uncached = gold(crm.url(), cache=0.0)
        ask(lookups, uncached, PREMIUM)
        ask(lookups, uncached, PREMIUM)
        assert len(crm.requests) == 3
        crm.mode = "error"
        failing = gold(crm.url(), cache=60.0, timeout=0.4)
        assert ask(lookups, failing, "+48600000001").result == FAILED
        assert ask(lookups, failing, "+48600000001").result == FAILED
        assert len(crm.requests) == 5


def test_a_failure_spell_is_logged_once_and_its_end_once(caplog):
    with CrmServer("garbage", members={PREMIUM}) as crm, caplog.at_level(logging.DEBUG, logger="ivr.lookup"):
        lookups = HttpLookups()
        segment = gold(crm.url(), cache=0.0)
        for n in range(4):
            assert ask(lookups, segment, f"+4860000000{n}").result == FAILED
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert warnings == [f'segment "gold": lookup {crm.url()} failed (the answer is no JSON); '
                            "callers go the normal path until it answers again"]
        crm.mode = "json"
        assert ask(lookups, segment, PREMIUM).result == MEMBER
        crm.mode = "error"
        assert ask(lookups, segment, PREMIUM).result == FAILED
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings[1:] == ['segment "gold": lookup answers again, after 4 failed lookup(s)',
                            f'segment "gold": lookup {crm.url()} failed (HTTP 500); callers go the normal path until it answers again']


def test_secrets_come_from_the_environment_and_are_never_logged(caplog):
    with CrmServer("json", members={PREMIUM}) as crm:
        segment = gold(crm.url("/vip?key=${CRM_KEY}&number={number}"), headers=(("Authorization", "Bearer ${CRM_TOKEN}"),))
        lookups = HttpLookups(environ={"CRM_TOKEN": "t0ken-value", "CRM_KEY": "k3y"})
        assert ask(lookups, segment, PREMIUM).result == MEMBER
        [(path, headers)] = crm.requests
        assert path == "/vip?key=k3y&number=%2B48225550101"
        assert headers["Authorization"] == "Bearer t0ken-value"
        with caplog.at_level(logging.DEBUG):
            answer = ask(HttpLookups(environ={"CRM_KEY": "k3y"}), segment, PREMIUM)
        assert answer.result == FAILED and "CRM_TOKEN is not set" in answer.error
        assert len(crm.requests) == 1
    assert "k3y" not in caplog.text and "t0ken" not in caplog.text and "${CRM_KEY}" in caplog.text


def test_an_oversized_answer_is_garbage():
    with CrmServer("json", members={PREMIUM}) as crm:
        crm.members = set()
        segment = gold(crm.url())
        import ivr.lookup as lookup_module

        saved, lookup_module.MAX_BODY = lookup_module.MAX_BODY, 8
        try:
            answer = ask(HttpLookups(), segment, PREMIUM)
        finally:
            lookup_module.MAX_BODY = saved
    assert answer.result == FAILED and answer.error.startswith("the answer is longer than")


def test_the_engine_never_waits_longer_than_the_timeout_whatever_the_lookup_does():
    class Hanging:
        async def ask(self, segment, caller):
            await asyncio.sleep(60)

    class Broken:
        async def ask(self, segment, caller):
            raise RuntimeError("bug")

    segment = gold("http://crm/{number}", timeout=0.2)
    started = time.monotonic()
    hung = asyncio.run(ask_guarded(Hanging(), segment, PREMIUM))
    assert time.monotonic() - started < 0.2 + SLACK  # the time-out, not the lookup's 60 s
    assert (hung.result, hung.error) == (FAILED, "no answer within 200 ms")
    broke = asyncio.run(ask_guarded(Broken(), segment, PREMIUM))
    assert (broke.result, broke.error) == (FAILED, "the lookup broke: RuntimeError")


def test_one_lookups_serves_several_event_loops():
    """`ivr simulate` and the journey runner each run their own loop: the pool follows."""
    with CrmServer("json", members={PREMIUM}) as crm:
        lookups = HttpLookups()
        assert ask(lookups, gold(crm.url(), cache=0.0), PREMIUM).result == MEMBER
        assert ask(lookups, gold(crm.url(), cache=0.0), PREMIUM).result == MEMBER


@pytest.mark.parametrize("value", ["s3cret-token\n", "s3cret\r\nX-Injected: 1", "s3cret\x00", "s3cret\x1b"])
def test_a_header_value_with_a_control_character_is_refused_without_quoting_it(caplog, value):
    with CrmServer("json", members={PREMIUM}) as crm, caplog.at_level(logging.DEBUG):
        segment = gold(crm.url(), headers=(("Authorization", "Bearer ${CRM_TOKEN}"),))
        answer = ask(HttpLookups(environ={"CRM_TOKEN": value}), segment, PREMIUM)
    assert answer.result == FAILED
    assert answer.error == ('the header "Authorization" has a control character (a line break?) '
                            "once ${...} is read from the environment")
    assert crm.requests == []  # nothing was sent
    assert "s3cret" not in caplog.text and "s3cret" not in answer.error


def test_a_url_from_the_environment_with_a_line_break_is_refused_without_quoting_it(caplog):
    with CrmServer("json", members={PREMIUM}) as crm, caplog.at_level(logging.DEBUG):
        segment = gold(crm.url("/vip?key=${CRM_KEY}&number={number}"))
        answer = ask(HttpLookups(environ={"CRM_KEY": "k3y\n"}), segment, PREMIUM)
    assert (answer.result, answer.error) == (FAILED, "the URL has a control character once ${...} is read from the environment")
    assert crm.requests == [] and "k3y" not in caplog.text


def test_an_error_of_httpx_that_quotes_the_request_is_told_in_fixed_words(caplog, monkeypatch):
    import httpx

    def refuse(*args, **kwargs):
        raise httpx.LocalProtocolError("Illegal header value b'Bearer s3cret'")

    with CrmServer("json", members={PREMIUM}) as crm, caplog.at_level(logging.DEBUG):
        lookups = HttpLookups()
        asyncio.run(lookups.start())
        monkeypatch.setattr(httpx.AsyncClient, "stream", refuse)
        answer = ask(lookups, gold(crm.url()), PREMIUM)
    assert answer.result == FAILED and "s3cret" not in answer.error and "s3cret" not in caplog.text
    assert answer.error.startswith("the request cannot be sent")


@pytest.mark.parametrize("written, logged", [
    ("https://crm/vip?key=s3cret&number={number}", "https://crm/vip?key=***&number={number}"),
    ("https://crm/vip?key=${CRM_KEY}&number={number}", "https://crm/vip?key=${CRM_KEY}&number={number}"),
    ("https://user:s3cret@crm/vip/{number}", "https://user:***@crm/vip/{number}"),
    ("https://user:${CRM_PASSWORD}@crm/vip/{number}", "https://user:${CRM_PASSWORD}@crm/vip/{number}"),
    ("http://127.0.0.1:8080/vip?number={number}", "http://127.0.0.1:8080/vip?number={number}"),
])
def test_the_logged_url_masks_query_values_and_the_password(written, logged):
    assert redact_url(written) == logged


def test_a_secret_written_into_the_url_is_not_logged(caplog):
    with CrmServer("error", members={PREMIUM}) as crm, caplog.at_level(logging.DEBUG):
        answer = ask(HttpLookups(), gold(crm.url("/vip?key=s3cret&number={number}")), PREMIUM)
    assert answer.result == FAILED and "s3cret" not in caplog.text and "key=***" in caplog.text


def test_the_client_is_made_at_start_and_not_inside_a_callers_time_out(monkeypatch):
    """Making the client reads the CA file (tens of ms): start() does it, off the loop, once."""
    import ivr.lookup as lookup_module

    made = []
    real = lookup_module._new_client

    def slow_client():
        time.sleep(0.3)  # longer than the time-out below
        made.append(1)
        return real()

    monkeypatch.setattr(lookup_module, "_new_client", slow_client)

    async def run() -> list[LookupAnswer]:
        lookups = HttpLookups()
        await lookups.start()
        answers = [await lookups.ask(gold(crm.url(), timeout=0.2, cache=0.0), PREMIUM) for _ in range(2)]
        await lookups.close()
        return answers

    with CrmServer("json", members={PREMIUM}) as crm:
        answers = asyncio.run(run())
    assert [a.result for a in answers] == [MEMBER, MEMBER], answers
    assert all(a.ms < 300 for a in answers) and made == [1]
