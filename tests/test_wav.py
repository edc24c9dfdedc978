"""16-bit WAV files written with numpy are libsndfile's byte for byte: the samples, the chunks, and what the
sink writes and records (peak included) for audio at, past and inside full scale."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from batchvoc.sink import ShardSink, record_of
from batchvoc.wav import MAX_COMMENT_BYTES, fits, pcm16, same_as_libsndfile, wav_pcm16


def libsndfile_wav(audio: np.ndarray, rate: int, comment: str) -> bytes:
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", rate, 1, "PCM_16", format="WAV") as out:
        out.comment = comment
        out.write(audio)
    return buffer.getvalue()


def test_this_libsndfile_is_the_one_the_layout_was_taken_from():
    assert same_as_libsndfile()


def test_samples_are_libsndfile_s_codes_everywhere_in_range_and_past_it():
    rng = np.random.default_rng(3)
    audio = np.concatenate([rng.uniform(-1.0, 1.0, 200_000), rng.normal(0, 1e-3, 50_000), rng.uniform(-3, 3, 1000),
                            np.arange(-32768, 32769) / 32768.0, (np.arange(-512, 513) + 0.5) / 32768.0,
                            [1e30, -1e30, 2.0**-40, -(2.0**-40)]]).astype(np.float32)  # fmt: skip
    expected = np.frombuffer(libsndfile_wav(np.clip(audio, -1.0, 1.0), 16000, "x")[-audio.size * 2 :], "<i2")
    np.testing.assert_array_equal(pcm16(audio), expected)  # unclipped input saturates like clipped input


@pytest.mark.parametrize("comment", ["a", "ab", "abc", '{"batchvoc_row": {"peak": 0.5}}', "\u00e9" * 7,
                                     "x" * MAX_COMMENT_BYTES, "\u00e9" * (MAX_COMMENT_BYTES // 2)])  # fmt: skip
@pytest.mark.parametrize("samples", [1, 3, 4801])
def test_files_are_libsndfile_s_bytes(comment, samples):
    audio = np.sin(np.arange(samples, dtype=np.float32) * 0.01) * np.float32(0.7)
    for rate in (22050, 48000):
        assert wav_pcm16(audio, rate, comment) == libsndfile_wav(audio, rate, comment)
    assert fits(audio, comment)


def test_what_the_fast_path_does_not_write():
    audio = np.zeros(4, np.float32)
    assert not fits(audio, "") and not fits(audio, "x" * (MAX_COMMENT_BYTES + 1))
    assert not fits(np.zeros((4, 1), np.float32), "x") and not fits(np.zeros(0, np.float32), "x")


@pytest.mark.parametrize("audio", [
    np.linspace(-1.5, 1.5, 4001), np.float32([0.0, -0.0, 0.0]), np.float32([-0.0]), np.float32([-0.25, 0.125]),
    np.float32([1.0, -1.0]), np.zeros(0), np.float32([0.5, np.nan, 0.1]), np.float32([0.5, np.inf]),
    np.float64([0.1, -0.30000001]),
])  # fmt: skip
def test_the_sink_writes_and_records_what_libsndfile_would(tmp_path, audio):
    sink = ShardSink(tmp_path, "s0", 24000, "wav", "PCM_16")
    checks = dict(clipped=2, mel_error=0.25, status="ok", error=None)
    fields = sink.write("a", audio, checks)
    clipped = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
    peak = float(np.abs(clipped).max()) if clipped.size else 0.0
    assert (fields["peak"], fields["n_samples"]) == (peak, clipped.size) or np.isnan(peak)
    expected = libsndfile_wav(clipped, 24000, record_of(fields))
    assert (tmp_path / "audio" / "s0" / "a.wav").read_bytes() == expected
    assert str(fields["peak"]) == str(peak)  # -0.0 and NaN as libsndfile's path gives them
