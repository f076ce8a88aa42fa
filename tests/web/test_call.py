"""The call page: facts, timeline and player of a simulated call written by the real
CallWriter, its recording (the WAV `ivr simulate --record` makes) served by id with HTTP
Range and audited, paths that escape the recordings folder refused, and the scorecard:
scores, validation, reviewers, tags, the reviewed flag, holds and their release."""

from __future__ import annotations

import array
import asyncio
import dataclasses
import datetime as dt
import os
import re
import shutil
import wave
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import pytest
from sqlalchemy import select

from ivr.channels.call_audio import CallAudio
from ivr.channels.scripted import QueueScript, ScriptedChannel
from ivr.clock import VirtualClock
from ivr.engine import Engine
from ivr import events as ev
from ivr.engine.sampling import SurveySampler
from ivr.flow.project import load_flows
from ivr.prompts.library import PromptLibrary
from ivr.simulation.simulate import parse_time
from ivr.store import CallWriter
from ivr.store.models import AuditEntry, Call, CallEvent, CallTag, Hold, Recording, Review
from ivr.web.audio import REPEAT_WINDOW
from ivr.web.users import add_user

from .support import log_in

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "90012345"  # the account number the caller types: sensitive
KEYS = f"1 3 {ACCOUNT}# 9#"
CALLER = "+48 22 123 45 67"
CRITERIA = ("greeting", "diagnosis", "cause", "solution", "next_steps", "anything_else", "logged")
VOID = {"input", "br", "img", "meta", "link", "hr", "source", "wbr", "col"}


# --- a page, read -------------------------------------------------------------------------------
class Page(HTMLParser):
    """The elements of a page that have an id: tag, attributes, text; selects' chosen values."""

    def __init__(self, html: str):
        super().__init__()
        self.by_id: dict[str, dict[str, Any]] = {}
        self.selected: dict[str, str] = {}
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        node = {"tag": tag, "attrs": dict(attrs), "text": []}
        if tag == "option" and "selected" in node["attrs"]:
            select_ = next((n for n in reversed(self._open) if n["tag"] == "select"), None)
            if select_ is not None:
                self.selected[select_["attrs"].get("id", "")] = node["attrs"].get("value", "")
        if "id" in node["attrs"]:
            self.by_id[node["attrs"]["id"]] = node
        if tag not in VOID:
            self._open.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for node in self._open:
            node["text"].append(data)

    def text(self, element_id: str) -> str:
        return " ".join("".join(self.by_id[element_id]["text"]).split())

    def attr(self, element_id: str, name: str) -> Optional[str]:
        return self.by_id[element_id]["attrs"].get(name)


# --- a simulated call, recorded and written ---------------------------------------------------
@pytest.fixture(scope="module")
def heard(tmp_path_factory):
    """A call of flows/main.yaml as `ivr simulate --record` makes it: the business support
    line (account number typed, agent answers, survey 9), its events and its WAV."""
    flows, config = load_flows([REPO / "flows"], REPO / "config.yaml")
    channel = ScriptedChannel(KEYS, VirtualClock(parse_time("2026-11-24T10:00:00+01:00")),
                              [QueueScript("answered", wait=35.0, talk=120.0, agent="PJSIP/104")])
    channel.audio = CallAudio(PromptLibrary(flows, config))
    events: list = []
    engine = Engine(flows, config, sampler=SurveySampler(start=9))
    call = asyncio.run(engine.run(channel, "main", caller=CALLER, clock=channel.clock, call_id="sim-1",
                                  on_event=events.append))
    wav = tmp_path_factory.mktemp("heard") / "sim-1.wav"
    channel.audio.write(wav)
    assert call.outcome == ev.Outcome.ANSWERED
    return SimpleNamespace(events=events, wav=wav, version=call.flow.version, peaks=wav_peaks(wav))


def wav_peaks(path: Path, bars: int = 300) -> list[float]:
    with wave.open(str(path), "rb") as wav:
        samples = array.array("h")
        samples.frombytes(wav.readframes(wav.getnframes()))
    size = max(1, len(samples) // bars)
    return [max(abs(x) for x in samples[i:i + size]) / 32768 for i in range(0, len(samples), size)]


def write_call(ctx, heard, call_id: str = "sim-1", *, recording: bool = True, peaks: bool = True) -> SimpleNamespace:
    """The call's events through the real CallWriter; its WAV into the recordings folder, linked."""
    writer = CallWriter(ctx.engine, source="simulated", recordings_dir=ctx.recordings_dir)
    for event in heard.events:
        writer.submit(dataclasses.replace(event, call_id=call_id))
    path = None
    if recording:
        path = ctx.recordings_dir / "2026" / "11" / "24" / f"{call_id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(heard.wav, path)
        writer.link_recording(call_id, path)
    assert writer.close()
    rec_id = None
    if recording:
        with ctx.sessions() as s:
            row = s.scalar(select(Recording).where(Recording.call_id == call_id))
            if peaks:
                row.peaks = heard.peaks
            rec_id = row.id
            s.commit()
    return SimpleNamespace(id=call_id, recording=rec_id, path=path)


@pytest.fixture
def written(ctx, heard):
    return write_call(ctx, heard)


def rows(ctx, model, *where):
    with ctx.sessions() as s:
        return list(s.scalars(select(model).where(*where)))


# --- the page ---------------------------------------------------------------------------------
def test_the_page_shows_the_facts_of_the_call(login, written, heard):
    response = login("qa").get("/calls/sim-1")
    assert response.status_code == 200
    page = Page(response.get_data(as_text=True))
    assert page.text("fact-started") == "2026-11-24 10:00:00 Europe/Warsaw"
    assert page.text("fact-caller") == CALLER
    assert page.text("fact-language") == "pl"
    assert page.text("fact-flow") == f"main version {heard.version}"
    assert page.text("fact-department") == "support"
    assert page.text("fact-agent") == "PJSIP/104"
    assert page.text("fact-outcome") == "answered"
    duration = heard.events[-1].data["duration"]
    assert page.text("fact-duration") == f"{int(round(duration)) // 60}:{int(round(duration)) % 60:02d}"
    assert page.text("fact-queue-wait") == "0:35" and page.text("fact-talk") == "2:00"
    assert page.text("fact-nps") == "9"
    assert page.text("fact-keys") == "1 3 ******** 9"
    assert page.text("fact-tags") == "–" and page.text("fact-reviewed") == "no"


def test_the_timeline_has_every_step_at_its_offset(login, written, heard):
    page = Page(login("qa").get("/calls/sim-1").get_data(as_text=True))
    by_type = {}
    for event in heard.events:
        by_type.setdefault(event.type, []).append(event)
    for event in heard.events:
        if event.type == ev.TRANSFER_RESULT:
            continue
        entry = f"event-{event.seq}"
        assert page.attr(entry, "data-t") == f"{event.t:.3f}", entry
        minutes, seconds = divmod(int(event.t), 60)
        assert page.text(entry).startswith(f"{minutes:02d}:{seconds:02d} ")
    first_menu = next(e for e in heard.events if e.type == ev.NODE_ENTERED and e.node == "main_menu")
    assert page.text(f"event-{first_menu.seq}").endswith("Menu main_menu via 1")
    menu_prompt = next(e for e in heard.events if e.type == ev.PROMPT and e.data["prompt"] == "main_menu")
    assert "Prompt main_menu [pl] Sprzedaż, wciśnij 1." in page.text(f"event-{menu_prompt.seq}")
    english = next(e for e in heard.events if e.type == ev.PROMPT and e.data["language"] == "en")
    assert "For English, press 2." in page.text(f"event-{english.seq}")  # the language it was played in
    assert [page.text(f"event-{e.seq}")[6:] for e in by_type[ev.KEY]] == ["Key 1 pressed language", "Key 3 pressed main_menu"]
    [entered] = by_type[ev.INPUT]
    assert page.text(f"event-{entered.seq}")[6:] == "Input ******** into account (sensitive: masked)"
    assert "Route decision: account ~ ^9" in page.text(f"event-{by_type[ev.ROUTE][-1].seq}")
    [transfer] = by_type[ev.TRANSFER]
    assert page.text(f"event-{transfer.seq}").endswith("Transfer to support queue support")
    [result] = by_type[ev.TRANSFER_RESULT]
    agent, talk = f"event-{result.seq}-agent", f"event-{result.seq}-talk"
    assert float(page.attr(agent, "data-t")) == pytest.approx(transfer.t + 35.0, abs=0.002)  # after the wait
    assert page.text(agent).endswith("Agent PJSIP/104 answered support, after 0:35 in the queue")
    assert page.attr(talk, "data-t") == f"{result.t:.3f}" and "talked 2:00" in page.text(talk)
    assert page.text(f"event-{by_type[ev.SURVEY][0].seq}").endswith("Survey answer: 9")
    assert page.text(f"event-{by_type[ev.OUTCOME][0].seq}").endswith("Outcome: answered department support")
    # in time order, as the player goes
    html = login("qa").get("/calls/sim-1").get_data(as_text=True)
    times = [float(t) for t in re.findall(r'<li id="event-[^"]+" class="tl [^"]+" data-t="([0-9.]+)"', html)]
    assert times == sorted(times) and len(times) == len(heard.events) + 1


def test_the_player_plays_the_recording_by_its_id_and_draws_its_waveform(login, written, heard):
    html = login("qa").get("/calls/sim-1").get_data(as_text=True)
    page = Page(html)
    assert page.attr("call-audio", "src") == f"/recordings/{written.recording}/audio"
    assert page.attr("call-download", "href") == f"/recordings/{written.recording}/audio?download=1"
    assert page.by_id["waveform"]["tag"] == "svg"
    bars = re.search(r'<path class="wave-bars" d="([^"]+)"', html).group(1)
    assert bars.count("M") == len(heard.peaks) > 100
    assert page.attr("waveform-cursor", "x1") == "0" and "waveform-played" in page.by_id
    assert "no-recording" not in page.by_id
    # the Content-Security-Policy allows no inline script or style: the page needs none
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and " style=" not in html and " on" + "click=" not in html
    assert '<script src="/static/call.js" defer></script>' in html


def test_sensitive_digits_appear_nowhere_even_if_stored_unmasked(login, written, ctx):
    # a record from a broken writer: the digits of a sensitive input in the clear
    with ctx.sessions() as s:
        s.add_all([CallEvent(call_id="sim-1", seq=900, t=1.0, type=ev.INPUT, flow="main", node="support_account",
                             data={"digits": "55554444", "var": "account", "sensitive": True}),
                   CallEvent(call_id="sim-1", seq=901, t=1.0, type=ev.VARIABLE, flow="main", node="support_account",
                             data={"name": "account", "value": "55554444"}),
                   CallEvent(call_id="sim-1", seq=902, t=1.0, type=ev.INVALID, flow="main", node="support_account",
                             data={"digits": "5555", "attempt": 1, "attempts": 3})])
        s.commit()
    html = login("qa").get("/calls/sim-1").get_data(as_text=True)
    assert ACCOUNT not in html and "5555" not in html
    page = Page(html)
    assert page.text("event-900")[6:].startswith("Input ********")
    assert page.text("event-901")[6:] == "Set account = ********"
    assert page.text("event-902")[6:].startswith("Invalid entry ****")


def test_untrusted_caller_text_is_escaped(login, written, ctx):
    with ctx.sessions() as s:
        s.get(Call, "sim-1").caller_name = '<script>alert("x")</script>'
        s.commit()
    html = login("qa").get("/calls/sim-1").get_data(as_text=True)
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_calls_without_a_playable_recording_say_so(login, ctx, heard):
    write_call(ctx, heard, "no-rec", recording=False)
    deleted = write_call(ctx, heard, "purged")
    missing = write_call(ctx, heard, "lost", peaks=False)
    with ctx.sessions() as s:
        s.get(Recording, deleted.recording).deleted_at = dt.datetime(2026, 12, 30, 12, tzinfo=dt.timezone.utc)
        s.commit()
    deleted.path.unlink()
    missing.path.unlink()
    client = login("qa")
    expected = {"no-rec": "This call has no recording.",
                "purged": "The recording of this call was deleted on 2026-12-30 (retention); only its record is kept.",
                "lost": "The recording of this call is missing from the recordings folder."}
    for call_id, message in expected.items():
        response = client.get(f"/calls/{call_id}")
        page = Page(response.get_data(as_text=True))
        assert response.status_code == 200 and page.text("no-recording") == message
        assert "call-audio" not in page.by_id and "waveform" not in page.by_id
        assert page.attr("event-0", "data-t") == "0.000"  # the timeline is still there
    for rec in (deleted, missing):
        assert client.get(f"/recordings/{rec.recording}/audio").status_code == 404


def test_a_recording_not_indexed_yet_gets_a_flat_waveform_that_still_seeks(login, ctx, heard):
    rec = write_call(ctx, heard, peaks=False)
    page = Page(login("qa").get("/calls/sim-1").get_data(as_text=True))
    assert page.attr("waveform", "class") == "waveform flat"
    assert float(page.attr("waveform", "data-duration")) == pytest.approx(heard.events[-1].data["duration"])
    assert page.attr("call-audio", "src") == f"/recordings/{rec.recording}/audio"


def test_an_unknown_call_is_404(login):
    assert login("qa").get("/calls/nope").status_code == 404


# --- the audio --------------------------------------------------------------------------------
@pytest.mark.parametrize("header, start, end", [
    ("bytes=0-99", 0, 100),              # the first bytes
    ("bytes=1000-1999", 1000, 2000),     # a middle range
    ("bytes=3000000-", 3000000, None),   # open-ended: to the end
    ("bytes=-500", -500, None),          # a suffix: the last 500 bytes
])
def test_ranges_are_served_as_206_with_the_files_bytes(login, written, header, start, end):
    data = written.path.read_bytes()
    response = login("qa").get(f"/recordings/{written.recording}/audio", headers={"Range": header})
    expected = data[start:end]
    assert response.status_code == 206
    assert response.get_data() == expected and int(response.headers["Content-Length"]) == len(expected)
    first = start if start >= 0 else len(data) + start
    assert response.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    assert response.headers["Accept-Ranges"] == "bytes" and response.mimetype == "audio/wav"


def test_the_whole_file_without_a_range_and_416_past_its_end(login, written):
    data = written.path.read_bytes()
    client = login("qa")
    whole = client.get(f"/recordings/{written.recording}/audio")
    assert whole.status_code == 200 and whole.get_data() == data and whole.mimetype == "audio/wav"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "private, no-store, max-age=0"  # never in a shared cache
    assert whole.headers["Content-Disposition"].startswith("inline")
    past = client.get(f"/recordings/{written.recording}/audio", headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{len(data)}"


def test_a_download_is_an_attachment_named_after_the_call(login, written, ctx):
    response = login("qa").get(f"/recordings/{written.recording}/audio?download=1")
    assert response.status_code == 200 and response.get_data() == written.path.read_bytes()
    assert response.headers["Content-Disposition"] == "attachment; filename=call-sim-1.wav"
    [entry] = rows(ctx, AuditEntry, AuditEntry.action == "download")
    assert (entry.user, entry.call_id, entry.recording_id) == ("qa", "sim-1", written.recording)
    assert rows(ctx, AuditEntry, AuditEntry.action == "play") == []


def test_a_play_is_logged_once_not_for_every_range_the_player_asks(login, written, ctx):
    url = f"/recordings/{written.recording}/audio"
    client = login("qa")

    def plays():
        return rows(ctx, AuditEntry, AuditEntry.action == "play")

    for header in ("bytes=2000000-", "bytes=-500"):  # a seek, a metadata read: before any play
        assert client.get(url, headers={"Range": header}).status_code == 206
    assert plays() == []
    assert client.get(url, headers={"Range": "bytes=0-"}).status_code == 206
    [entry] = plays()
    assert (entry.user, entry.call_id, entry.recording_id, entry.address) == ("qa", "sim-1", written.recording, "127.0.0.1")
    for header in ("bytes=2000000-", "bytes=-500", "bytes=1000-1999"):  # seeks and metadata reads
        assert client.get(url, headers={"Range": header}).status_code == 206
    assert client.get(url).status_code == 200  # the browser opening the stream again on load
    assert client.head(url).status_code == 200
    assert len(plays()) == 1
    login("admin").get(url, headers={"Range": "bytes=0-1"})  # another user: their own entry
    assert sorted(e.user for e in plays()) == ["admin", "qa"]
    with ctx.sessions() as s:  # later
        for e in s.scalars(select(AuditEntry)):
            e.at -= REPEAT_WINDOW + dt.timedelta(seconds=1)
        s.commit()
    client.get(url, headers={"Range": "bytes=1000-1999"})  # a seek is still no play
    assert len(plays()) == 2
    client.get(url, headers={"Range": "bytes=0-1"})  # playing from the start again is
    assert [e.user for e in plays()].count("qa") == 2


def test_audio_needs_a_log_in_and_an_existing_recording(app, login, written, ctx):
    assert app.test_client().get(f"/recordings/{written.recording}/audio").status_code == 401
    assert login("qa").get("/recordings/999/audio").status_code == 404
    assert rows(ctx, AuditEntry, AuditEntry.action == "play") == []


@pytest.fixture
def outside(tmp_path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.wav").write_bytes(b"RIFF-not-for-you")
    return folder


@pytest.mark.parametrize("stored", ["../../etc/passwd", "/etc/passwd", "../outside/secret.wav", "{outside}/secret.wav",
                                    "link.wav", "linked-dir/secret.wav", "2026/../../outside/secret.wav", ""])
def test_paths_that_leave_the_recordings_folder_are_refused(login, ctx, outside, stored):
    (ctx.recordings_dir / "link.wav").symlink_to(outside / "secret.wav")
    (ctx.recordings_dir / "linked-dir").symlink_to(outside, target_is_directory=True)
    with ctx.sessions() as s:
        row = Recording(path=stored.format(outside=outside), created_at=dt.datetime.now(dt.timezone.utc))
        s.add(row)
        s.commit()
        rec_id = row.id
    response = login("qa").get(f"/recordings/{rec_id}/audio")
    assert response.status_code == 404
    assert b"RIFF-not-for-you" not in response.get_data() and b"root:" not in response.get_data()
    assert rows(ctx, AuditEntry, AuditEntry.action == "play") == []


def test_a_symlink_inside_the_folder_is_followed(login, written, ctx):
    (ctx.recordings_dir / "alias.wav").symlink_to(written.path)
    with ctx.sessions() as s:
        row = Recording(path="alias.wav", created_at=dt.datetime.now(dt.timezone.utc))
        s.add(row)
        s.commit()
        rec_id = row.id
    response = login("qa").get(f"/recordings/{rec_id}/audio", headers={"Range": "bytes=0-3"})
    assert response.status_code == 206 and response.get_data() == b"RIFF"


@pytest.mark.parametrize("url", ["/recordings/..%2F..%2Fetc%2Fpasswd/audio", "/recordings/../../etc/passwd/audio",
                                 "/recordings/1%2F..%2F..%2Fetc%2Fpasswd/audio", "/recordings/-1/audio",
                                 "/recordings/1.0/audio", "/recordings/%00/audio", "/recordings/audio",
                                 "/recordings/99999999999999999999999/audio"])
def test_anything_but_a_number_does_not_route(login, written, url):
    response = login("qa").get(url)
    expected = 400 if "%00" in url else 404  # a NUL is refused before routing
    assert response.status_code == expected and b"root:" not in response.get_data()


# --- the scorecard ----------------------------------------------------------------------------
def scorecard(client, call_id: str = "sim-1", *, csrf: Any = True, **fields: Any):
    data = {f"score_{key}": "4" for key in CRITERIA}
    data.update({k: str(v) for k, v in fields.items()})
    if csrf is True:
        data["csrf_token"] = client.csrf
    elif csrf:
        data["csrf_token"] = csrf
    return client.post(f"/calls/{call_id}/review", data=data)


def test_a_scorecard_is_saved_with_its_reviewer_tags_and_the_reviewed_flag(login, written, ctx):
    client = login("qa")
    response = scorecard(client, score_greeting="5", score_logged="na", score_cause="0",
                         notes="Polite; forgot the case.", tags=" Complaint, Upsell Offer ,complaint,, ")
    assert response.status_code == 302 and response.headers["Location"] == "/calls/sim-1#scorecard"
    [review] = rows(ctx, Review)
    assert review.reviewer == "qa" and review.call_id == "sim-1"
    assert review.scores == {"greeting": 5, "diagnosis": 4, "cause": 0, "solution": 4, "next_steps": 4,
                             "anything_else": 4}  # logged was n/a: not scored
    assert review.total == pytest.approx(21 / 30)
    assert review.notes == "Polite; forgot the case." and review.created_at == review.updated_at
    assert review.created_at > dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    assert sorted(t.tag for t in rows(ctx, CallTag)) == ["complaint", "upsell-offer"]
    assert rows(ctx, Call)[0].reviewed is True
    [entry] = rows(ctx, AuditEntry, AuditEntry.action == "review")
    assert entry.user == "qa" and entry.call_id == "sim-1" and "70%" in entry.detail
    page = Page(client.get("/calls/sim-1").get_data(as_text=True))
    assert page.text("fact-reviewed").startswith("yes") and page.text("fact-tags") == "complaint upsell-offer"
    assert page.selected["score-greeting"] == "5" and page.selected["score-logged"] == "na"
    assert page.text("review-notes") == "Polite; forgot the case."
    assert page.attr("review-tags", "value") == "complaint, upsell-offer"
    assert page.text(f"review-{review.id}").startswith("qa 70%")


@pytest.mark.parametrize("fields, field, message", [
    ({"score_greeting": "6"}, "score-greeting", "must be 0 to 5 or n/a"),
    ({"score_cause": "-1"}, "score-cause", "must be 0 to 5 or n/a"),
    ({"score_solution": "3.5"}, "score-solution", "must be 0 to 5 or n/a"),
    ({"score_solution": "²"}, "score-solution", "must be 0 to 5 or n/a"),
    ({"score_solution": "9" * 5000}, "score-solution", "must be 0 to 5 or n/a"),
    ({"score_diagnosis": ""}, "score-diagnosis", "Choose a score for “Diagnosis of the need” or n/a."),
    ({"tags": "ok, <b>bold</b>"}, "review-tags", "is not a tag"),
    ({"hold": "1", "hold_reason": "because"}, "review-hold-reason", "Say why the recording is kept"),
])
def test_a_wrong_scorecard_is_shown_again_with_its_errors_and_values(login, written, ctx, fields, field, message):
    client = login("qa")
    response = scorecard(client, **{"notes": "keep these notes", "tags": "first", "score_logged": "na", **fields})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    page = Page(html)
    assert message in page.text(f"{field}-error") and message in page.text("scorecard-errors")
    assert page.attr(field, "aria-invalid") == "true"
    assert page.text("review-notes") == "keep these notes"  # what was typed is kept
    assert page.selected["score-logged"] == "na" and page.selected["score-next_steps"] == "4"
    assert "<b>bold</b>" not in html
    assert rows(ctx, Review) == [] and rows(ctx, Hold) == [] and rows(ctx, CallTag) == []
    assert rows(ctx, Call)[0].reviewed is False
    assert rows(ctx, AuditEntry, AuditEntry.action == "review") == []


def test_an_unknown_criterion_is_never_stored(login, written, ctx):
    assert scorecard(login("qa"), score_bogus="5", score_greeting="3").status_code == 302
    [review] = rows(ctx, Review)
    assert set(review.scores) == set(CRITERIA) and review.scores["greeting"] == 3


def test_all_criteria_not_applicable_leave_no_total(login, written, ctx):
    assert scorecard(login("qa"), **{f"score_{key}": "na" for key in CRITERIA}).status_code == 302
    [review] = rows(ctx, Review)
    assert review.scores == {} and review.total is None


def test_the_same_reviewer_updates_and_another_adds_their_own(login, written, ctx):
    qa = login("qa")
    scorecard(qa, notes="first")
    [first] = rows(ctx, Review)
    scorecard(qa, score_greeting="1", notes="second thoughts")
    [updated] = rows(ctx, Review)
    assert updated.id == first.id and updated.notes == "second thoughts" and updated.scores["greeting"] == 1
    assert updated.created_at == first.created_at and updated.updated_at > first.updated_at
    assert scorecard(login("admin"), score_greeting="5").status_code == 302
    reviews = {r.reviewer: r for r in rows(ctx, Review)}
    assert set(reviews) == {"qa", "admin"} and reviews["admin"].scores["greeting"] == 5
    assert len(rows(ctx, AuditEntry, AuditEntry.action == "review")) == 3
    page = Page(qa.get("/calls/sim-1").get_data(as_text=True))
    assert page.selected["score-greeting"] == "1"  # the form shows the user's own scorecard
    assert page.attr(f"review-{reviews['admin'].id}", "data-reviewer") == "admin"


def test_a_scorecard_without_its_csrf_token_is_refused(login, written, ctx):
    client = login("qa")
    assert scorecard(client, csrf=None).status_code == 400
    assert scorecard(client, csrf="forged").status_code == 400
    assert client.post("/calls/sim-1/release", data={"release_reason": "x"}).status_code == 400
    assert rows(ctx, Review) == []


def test_a_scorecard_for_an_unknown_call_is_404(login):
    assert scorecard(login("qa"), "nope").status_code == 404


# --- holds ------------------------------------------------------------------------------------
@pytest.fixture
def other_qa(app, ctx):
    add_user(ctx.engine, "qa2", "qa2-password-1", "qa")
    client = app.test_client()
    assert log_in(client, "qa2", "qa2-password-1").status_code == 302
    with client.session_transaction() as session:
        client.csrf = session["csrf"]
    return client


def test_a_hold_is_placed_with_a_reason_and_released_with_one(login, written, ctx, other_qa):
    qa = login("qa")
    assert scorecard(qa, hold="1", hold_reason="dispute", hold_note="case 77").status_code == 302
    [hold] = rows(ctx, Hold)
    assert (hold.reason, hold.placed_by) == ("dispute: case 77", "qa")
    [entry] = rows(ctx, AuditEntry, AuditEntry.action == "hold")
    assert entry.detail == "dispute: case 77" and entry.user == "qa"
    page = Page(qa.get("/calls/sim-1").get_data(as_text=True))
    assert "dispute: case 77" in page.text("hold-status") and "release-form" in page.by_id
    assert "review-hold" not in page.by_id
    # another reviewer sees the hold but may not release it
    other_page = Page(other_qa.get("/calls/sim-1").get_data(as_text=True))
    assert "release-form" not in other_page.by_id and "qa" in other_page.text("release-note")
    refused = other_qa.post("/calls/sim-1/release", data={"release_reason": "mine now", "csrf_token": other_qa.csrf})
    assert refused.status_code == 403 and len(rows(ctx, Hold)) == 1
    # their scorecard leaves the hold alone
    assert scorecard(other_qa).status_code == 302 and len(rows(ctx, Hold)) == 1
    # a release needs a reason
    empty = qa.post("/calls/sim-1/release", data={"release_reason": "  ", "csrf_token": qa.csrf})
    assert empty.status_code == 422 and "Say why" in Page(empty.get_data(as_text=True)).text("release-error")
    assert len(rows(ctx, Hold)) == 1
    done = qa.post("/calls/sim-1/release", data={"release_reason": "dispute settled", "csrf_token": qa.csrf})
    assert done.status_code == 302 and rows(ctx, Hold) == []
    [released] = rows(ctx, AuditEntry, AuditEntry.action == "release")
    assert released.user == "qa" and released.detail.startswith("dispute settled (held for “dispute: case 77” by qa")


def test_an_admin_may_release_anyone_s_hold(login, written, ctx):
    assert scorecard(login("qa"), hold="1", hold_reason="complaint").status_code == 302
    admin = login("admin")
    assert "release-form" in Page(admin.get("/calls/sim-1").get_data(as_text=True)).by_id
    response = admin.post("/calls/sim-1/release", data={"release_reason": "complaint closed", "csrf_token": admin.csrf})
    assert response.status_code == 302 and rows(ctx, Hold) == []
    [entry] = rows(ctx, AuditEntry, AuditEntry.action == "release")
    assert entry.user == "admin"


def test_releasing_a_call_not_on_hold_changes_nothing(login, written, ctx):
    qa = login("qa")
    response = qa.post("/calls/sim-1/release", data={"release_reason": "why not", "csrf_token": qa.csrf})
    assert response.status_code == 302 and rows(ctx, AuditEntry, AuditEntry.action == "release") == []


def test_the_scorecard_needs_the_qa_or_admin_role(app, written):
    client = app.test_client()
    assert client.get("/calls/sim-1").status_code == 302  # to the log-in page
    assert client.post("/calls/sim-1/review", data={}).status_code in (400, 401)
    assert os.path.exists(written.path)


def test_a_voicemail_call_plays_the_whole_call_and_offers_the_message(login, ctx, tmp_path):
    import datetime as dt
    import wave as wavmod

    from ivr.store.models import Call, Recording

    started = dt.datetime(2026, 11, 20, 19, 0, tzinfo=dt.timezone.utc)
    root = ctx.recordings_dir
    files = {"voicemail/general/1700000001.1.wav": 8000, "2026-11-20/1700000001.1.wav": 16000}
    for rel, frames in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        with wavmod.open(str(root / rel), "wb") as out:
            out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
            out.writeframes(b"\x00\x08" * frames)
    with ctx.sessions() as session:
        session.add(Call(id="1700000001.1", uniqueid="1700000001.1", flow="main", started_at=started,
                         duration=2.0, outcome="voicemail"))
        # the voicemail file was indexed first: the player must still take the whole call
        for i, (rel, frames) in enumerate(files.items(), 1):
            session.add(Recording(id=i, call_id="1700000001.1", path=rel, size=44 + 2 * frames,
                                  duration=frames / 8000, created_at=started))
        session.commit()
    page = login("qa").get("/calls/1700000001.1").get_data(as_text=True)
    assert 'data-recording-id="2"' in page
    assert 'href="/recordings/1/audio?download=1">the voicemail message</a>' in page
