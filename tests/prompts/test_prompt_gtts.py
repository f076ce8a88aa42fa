"""The gTTS backend against a local fake of Google's servers: real audio comes back as an
8 kHz WAV; an answer that is not audio, silence, a server that never answers and a machine
that is offline are clear errors that leave no file behind.

gTTS posts to https://translate.google.com/_/TranslateWebserverUi/data/batchexecute with
requests, passing `proxies=urllib.request.getproxies()` and `verify=False`. So the fake is
an HTTPS proxy on 127.0.0.1: it accepts `CONNECT translate.google.com:443`, speaks TLS
with a throwaway self-signed certificate, and answers the POST in the batchexecute format
gTTS parses. The tests point HTTPS_PROXY at it; no byte leaves this machine.
"""

from __future__ import annotations

import base64
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest

from ivr.errors import PromptError
from ivr.prompts.audio import inspect
from ivr.prompts.backends import GttsBackend
from ivr.settings.prompts import PromptSettings
from prompt_helpers import SPEECH_RMS, flow_text, leftovers, line_of, sox, wave_facts
from prompt_helpers import install, mp3_support, tools  # noqa: F401 (fixtures)

GOOGLE = "translate.google.com:443"
BATCHEXECUTE = "/_/TranslateWebserverUi/data/batchexecute"


def batchexecute(payload: bytes) -> bytes:
    """Google's answer as gTTS reads it: the audio, base64, on the line that names jQ1olc."""
    b64 = base64.b64encode(payload)
    return b")]}'\n\n" + b'[["wrb.fr","jQ1olc","[\\"' + b64 + b'\\"]",null,null,null,"generic"]]\n'


def _head(read) -> list[str]:
    """The request line and headers, up to the blank line."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        chunk = read(1)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1").split("\r\n")[:-2]


class FakeGoogle:
    """An HTTPS proxy on 127.0.0.1 that answers every POST with `answer` (None: never)."""

    def __init__(self, certificate: tuple[Path, Path], answer: Optional[bytes]):
        self.answer = answer
        self.connects: list[str] = []
        self.posts: list[tuple[str, str, bytes]] = []  # (Host header, path, body)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*map(str, certificate))
        self.release = threading.Event()
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake.serve(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, conn: socket.socket) -> None:
        lines = _head(conn.recv)
        method, target, _version = lines[0].split(" ", 2)
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.connects.append(target)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with self.context.wrap_socket(conn, server_side=True) as tls:
            stream = tls.makefile("rb")
            lines = _head(stream.read)
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
            body = stream.read(int(headers.get("content-length", 0)))
            self.posts.append((headers.get("host", ""), lines[0].split(" ")[1], body))
            if self.answer is None:
                self.release.wait(10)  # a server that never answers
                return
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(self.answer) + self.answer)

    def __enter__(self) -> "FakeGoogle":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for translate.google.com (openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=translate.google.com"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, f"openssl cannot make a test certificate: {done.stderr.strip()}"
    return cert, key


@pytest.fixture(scope="session")
def speech_mp3(tmp_path_factory) -> tuple[bytes, float]:
    """Real speech as MP3 (espeak-ng, then sox with libsox-fmt-mp3), and its length in s."""
    folder = tmp_path_factory.mktemp("mp3")
    wav, mp3 = folder / "speech.wav", folder / "speech.mp3"
    subprocess.run(["espeak-ng", "-v", "pl", "-w", str(wav), "Dzień dobry, w czym mogę pomóc?"], check=True)
    sox(wav, "-r", 24000, "-c", 1, mp3)
    return mp3.read_bytes(), wave_facts(wav)[3]


@pytest.fixture
def via_proxy(monkeypatch):
    """Route HTTPS (and only through the given local proxy) for the test."""

    def route(url: str) -> None:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", url)
        monkeypatch.setenv("https_proxy", url)

    return route


@pytest.fixture
def fake_google(certificate, via_proxy) -> Iterator:
    """fake_google(answer) starts a fake and routes HTTPS through it."""
    started: list[FakeGoogle] = []

    def start(answer: Optional[bytes]) -> FakeGoogle:
        fake = FakeGoogle(certificate, answer).__enter__()
        started.append(fake)
        via_proxy(fake.url)
        return fake

    yield start
    for fake in started:
        fake.__exit__(None, None, None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend(timeout: float = 5.0) -> GttsBackend:
    return GttsBackend(PromptSettings(tts="gtts", voices={"pl": "pl", "en": "en"}, timeout=timeout))


def test_gtts_speech_comes_back_as_asterisk_audio(tmp_path, fake_google, speech_mp3, mp3_support):
    mp3, seconds = speech_mp3
    fake = fake_google(batchexecute(mp3))
    dest = tmp_path / "out" / "hello.wav"
    _backend().render("Dzień dobry, w czym mogę pomóc?", "pl", dest)

    assert fake.connects == [GOOGLE]
    [(host, path, body)] = fake.posts
    assert (host, path.split("?")[0]) == ("translate.google.com", BATCHEXECUTE)
    assert b"jQ1olc" in body
    rate, channels, width, duration = wave_facts(dest)
    assert (rate, channels, width) == (8000, 1, 2)
    assert duration == pytest.approx(seconds, abs=0.15)  # the MP3's speech, whole
    assert inspect(dest).rms > SPEECH_RMS
    assert sorted(p.name for p in dest.parent.iterdir()) == ["hello.wav"]


@pytest.mark.parametrize("answer, complaint", [
    (b"<html>Our systems have detected unusual traffic</html>" * 20, "not MP3 audio"),
    (b"", "not MP3 audio"),
])
def test_an_answer_that_is_not_audio_is_an_error(tmp_path, fake_google, answer, complaint):
    fake = fake_google(batchexecute(answer))
    dest = tmp_path / "out" / "hello.wav"
    with pytest.raises(PromptError, match=complaint):
        _backend().render("Dzień dobry.", "pl", dest)
    assert fake.posts, "the fake was never asked"
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_an_answer_of_silence_is_an_error(tmp_path, fake_google, mp3_support):
    silent = tmp_path / "silence.mp3"
    sox("-n", "-r", 24000, "-c", 1, silent, "trim", 0, 1.5)
    fake_google(batchexecute(silent.read_bytes()))
    dest = tmp_path / "out" / "hello.wav"
    with pytest.raises(PromptError, match="silence"):
        _backend().render("Dzień dobry.", "pl", dest)
    assert not dest.exists()


def test_offline_is_a_clear_error_and_leaves_no_file(tmp_path, via_proxy):
    via_proxy(f"http://127.0.0.1:{_closed_port()}")  # nothing listens: as good as no network
    dest = tmp_path / "out" / "hello.wav"
    started = time.monotonic()
    with pytest.raises(PromptError) as caught:
        _backend(timeout=2.0).render("Dzień dobry.", "pl", dest)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "Google's servers" in message and "online" in message
    assert not dest.exists()  # not even an empty file
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_a_server_that_never_answers_times_out(tmp_path, fake_google):
    fake_google(None)
    dest = tmp_path / "out" / "hello.wav"
    started = time.monotonic()
    with pytest.raises(PromptError, match="Google's servers"):
        _backend(timeout=1.0).render("Dzień dobry.", "pl", dest)
    assert time.monotonic() - started < 8
    assert not dest.exists()


def test_a_build_with_gtts_offline_keeps_the_previous_files(install, fake_google, via_proxy, speech_mp3, mp3_support):
    install.tts = "gtts"
    install.voices = {"pl": "pl", "en": "en"}
    fake_google(batchexecute(speech_mp3[0]))
    prompts = {"welcome": {"pl": "Dzień dobry.", "en": "Good morning."}}
    first = install.build(install.flow(flow_text(prompts)), workers=2)
    assert first.errors == [] and first.rendered == 2
    good = {p: p.read_bytes() for p in install.outputs()}

    via_proxy(f"http://127.0.0.1:{_closed_port()}")
    install.timeout = 2.0
    text = flow_text({"welcome": {"pl": "Dzień dobry wieczór.", "en": "Good evening."}})
    result = install.build(install.flow(text), workers=2)
    assert result.rendered == 0 and len(result.errors) == 2
    for diagnostic in result.errors:
        assert (diagnostic.location.file, diagnostic.location.line) == ("flows/demo.yaml", line_of(text, "welcome"))
        assert "online" in diagnostic.message and "previous file was kept" in diagnostic.message
    assert {p: p.read_bytes() for p in install.outputs()} == good
    assert leftovers(install.prompts) == []
