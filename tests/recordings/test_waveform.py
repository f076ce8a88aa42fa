"""Waveform peaks: silence is 0, a full-scale tone is 1, the buckets cover the file evenly
whatever the reading chunk, and a long file is quick."""

from __future__ import annotations

import array
import sys
import time
import wave

import pytest

from ivr.recordings.waveform import MAX_BUCKETS, PeakMeter, bucket_count, peaks

from .support import RATE, samples, write_wav


def test_silence_is_zero(tmp_path):
    result = peaks(write_wav(tmp_path / "s.wav", 30, amplitude=0))
    assert len(result) == MAX_BUCKETS
    assert set(result) == {0.0}


def test_a_full_scale_tone_is_one(tmp_path):
    result = peaks(write_wav(tmp_path / "t.wav", 30, amplitude=1.0))
    assert len(result) == MAX_BUCKETS
    assert min(result) >= 0.99 and max(result) == 1.0


def test_half_scale_and_where_the_sound_is(tmp_path):
    pcm = samples(10, amplitude=0.5) + samples(10, amplitude=0)
    result = peaks(write_wav(tmp_path / "h.wav", pcm=pcm))
    assert len(result) == MAX_BUCKETS
    assert all(0.49 <= v <= 0.5 for v in result[:400])
    assert set(result[400:]) == {0.0}


def test_the_most_negative_sample_is_full_scale(tmp_path):
    pcm = array.array("h", [0] * 100 + [-32768] + [0] * 99)
    if sys.byteorder == "big":
        pcm.byteswap()
    result = peaks(write_wav(tmp_path / "n.wav", pcm=pcm.tobytes()))
    assert max(result) == 1.0 and sorted(result)[-2] == 0.0


def test_short_files_get_fewer_buckets(tmp_path):
    assert len(peaks(write_wav(tmp_path / "short.wav", 0.5))) == 50  # one per 10 ms
    assert peaks(write_wav(tmp_path / "empty.wav", pcm=b"")) == []
    assert bucket_count(RATE * 3600, RATE) == MAX_BUCKETS
    assert bucket_count(3, RATE) == 1


@pytest.mark.parametrize("chunk", [1, 7, 1000, 4093, 10 ** 6])
def test_the_chunk_size_does_not_matter(chunk):
    pcm = samples(2.5, amplitude=0.3) + samples(0.5, amplitude=0.9, freq=1000) + samples(1, amplitude=0.1)
    frames = len(pcm) // 2
    whole = PeakMeter(frames, bucket_count(frames, RATE))
    whole.feed(pcm)
    pieces = PeakMeter(frames, bucket_count(frames, RATE))
    for start in range(0, len(pcm), 2 * chunk):
        pieces.feed(pcm[start:start + 2 * chunk])
    assert pieces.result() == whole.result()
    assert len(whole.result()) == 400
    assert max(whole.result()[250:300]) > 0.89  # the loud half second, where it is
    assert max(whole.result()[300:]) < 0.11


def test_not_16_bit_is_refused(tmp_path):
    path = tmp_path / "8bit.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(RATE)
        wav.writeframes(bytes(800))
    with pytest.raises(wave.Error, match="16-bit"):
        peaks(path)


def test_five_minutes_are_quick(tmp_path):
    # a pure-Python loop over 2.4 million samples takes seconds; max/min over a
    # memoryview take a tenth of one
    path = write_wav(tmp_path / "long.wav", pcm=samples(10, amplitude=0.7) * 30)
    started = time.perf_counter()
    result = peaks(path)
    assert time.perf_counter() - started < 1.5
    assert len(result) == MAX_BUCKETS and min(result) >= 0.69
