"""The round-trip check: the preset's own mel front end run on the vocoded audio, compared with the input mel.

Definition (docs/outputs.md, "The round-trip check"). For an utterance of T frames with input mel M [n_mels, T]
and output audio y [T * hop], let M' = log(clamp(mel_basis @ |STFT(y)|, clip)) be the preset's front end on y, at
the output rate, frame t's window covering samples [t * hop - p, t * hop - p + n_fft) with p = (n_fft - hop) / 2 (the
front end's framing). Counted frames are those whose window lies inside the utterance's audio, [0, T * hop)
(all but about 2 frames at each end). Both sides are floored at the log-mel floor log(clip):

    mel_error = mean over counted frames t and bands f of |M'[f, t] - max(M[f, t], log(clip))|   (natural log)

null when no frame counts (utterances shorter than about n_fft / hop + 1 frames). `mel_bias` is the same mean
of the signed difference M' - M (negative: the audio is quieter than its mel says).

Front ends that run at another rate than the output (gsv_v4: 32 kHz mels, 48 kHz audio) run at the output rate
with the same bin frequencies and window duration: n_fft, hop and window scaled by r = output rate / front-end
rate (1280/320 at 32 kHz = 1920/480 at 48 kHz), fmax kept at the front end's Nyquist frequency, and the
magnitude scaled by 1/r (a window r times longer sums r times more samples). This equals the front end on audio
resampled to its rate up to the resampler's band edge (tests/test_roundtrip.py states the tolerance).

Computed on the engine's device, per packed batch, right after the engine (batchvoc/stream.py): frame t of a
row counts when its window lies inside the row segment holding it (segment bounds), which for a piece cut
from a longer utterance includes its context frames, so per-piece sums add up to the utterance's.

A clipped sample is one at or past the largest 16-bit PCM code, |x| >= 1 - 2**-15 = 32767 / 32768, before PCM
conversion (FULL_SCALE says why).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from batchvoc.models.mel import mel_filterbank
from batchvoc.models.presets import MelFrontEnd, Preset

# rows of the per-frame values a batch hands back [K, B, L] (summed per utterance by the Stitcher)
CLIPPED, NON_FINITE, ABS_ERROR, SIGNED_ERROR, COUNTED = range(5)
FRAME_VALUES = 5
# a clipped sample: |x| at or past the largest 16-bit PCM code, 32767 / 32768 = 1 - 2**-15 (libsndfile writes
# round(x * 32768), clipped to [-32768, 32767]): such a sample is written as full scale, indistinguishable from a
# louder one. A model's tanh output never reaches 1.0 (at most 0.9999998 for a mel + 3), so 1.0 counted nothing.
FULL_SCALE = 1 - 2**-15
# check.max_mel_error's default. Measured with the pretrained HiFi-GAN V1 universal weights (CPU, fp32): espeak-ng
# speech 0.29-0.31 and a synthetic speech-like clip 0.51 with the right mel; the same mels stored transposed
# 1.04-1.50, in dB 2.56-2.62, +3 (too loud) 0.74-0.84 (docs/outputs.md, "The round-trip check").
DEFAULT_MAX_MEL_ERROR = 0.8


def output_front_end(preset: Preset) -> tuple[MelFrontEnd, float]:
    """(the preset's front end at the output rate, magnitude scale): see the module doc.

    Raises ValueError when the rates do not give whole-sample n_fft / window / hop at the output rate, or the
    scaled hop is not the vocoder's hop."""
    fe = preset.front_end
    ratio = Fraction(preset.sample_rate, fe.sample_rate)
    if ratio == 1:
        return fe, 1.0
    n_fft, win, hop = (ratio * fe.n_fft, ratio * fe.win_length, ratio * fe.hop_length)
    if any(v.denominator != 1 for v in (n_fft, win, hop)) or int(hop) != preset.hop_length:
        raise ValueError(f"{preset.name}: no output-rate front end equals its {fe.sample_rate} Hz one")
    fmax = fe.fmax if fe.fmax is not None else fe.sample_rate / 2
    scaled = replace(fe, sample_rate=preset.sample_rate, n_fft=int(n_fft), win_length=int(win),
                     hop_length=int(hop), fmax=fmax)  # fmt: skip
    return scaled, float(1 / ratio)


def log_mel_at_output(audio: Tensor, fe: MelFrontEnd, scale: float, basis: Tensor, window: Tensor) -> Tensor:
    """The front end's log-mel of audio [B, N] without edge padding: frame j covers samples
    [j * hop, j * hop + n_fft). Returns [B, n_mels, (N - n_fft) // hop + 1] float32 (the magnitude times `scale`,
    eps divided by scale² so that it is the front end's own sqrt(|X|² + eps) at its own rate)."""
    spec = torch.stft(audio, fe.n_fft, hop_length=fe.hop_length, win_length=fe.win_length, window=window,
                      center=False, normalized=False, onesided=True, return_complex=True)  # fmt: skip
    magnitude = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + fe.magnitude_eps / scale**2) * scale
    return torch.log(torch.clamp(torch.matmul(basis, magnitude), min=fe.clip))


class RoundTrip:
    """The check's device work for one preset on one device: per packed batch, per-frame values [K, B, L]."""

    def __init__(self, preset: Preset, device: torch.device | str):
        self.preset = preset
        self.fe, self.scale = output_front_end(preset)
        self.floor = math.log(self.fe.clip)
        basis = mel_filterbank(self.fe.sample_rate, self.fe.n_fft, self.fe.n_mels, self.fe.fmin, self.fe.fmax)
        self.basis = torch.from_numpy(basis).to(device)
        self.window = torch.hann_window(self.fe.win_length, device=device)
        self.pad = (self.fe.n_fft - self.fe.hop_length) // 2

    def frame_values(self, audio: Tensor, mel: Tensor, bounds: Tensor) -> Tensor:
        """Per-frame values [FRAME_VALUES, B, L] float32 of a batch: audio [B, L * hop] (any float dtype), input
        mel [B, n_mels, L] float32 and segment bounds [B, 2, L] int64, all on one device. Rows: audio_counts'
        two, then |error| and signed error averaged over bands on counted frames (0 elsewhere), counted (1/0)."""
        out = audio_counts(audio, bounds)
        audio = audio.float().reshape(bounds.shape[0], -1)
        length = bounds.shape[2]
        hop = audio.shape[1] // length
        fe, pad = self.fe, self.pad
        first = -(-pad // hop)  # first frame whose window starts inside the row
        last = (length * hop + pad - fe.n_fft) // hop
        if last < first:
            return out
        start = first * hop - pad
        clean = torch.nan_to_num(audio[:, start : last * hop - pad + fe.n_fft], nan=0.0, posinf=0.0, neginf=0.0)
        got = log_mel_at_output(clean, fe, self.scale, self.basis, self.window)  # [B, n_mels, last - first + 1]
        diff = got - mel[:, :, first : last + 1].float().clamp(min=self.floor)
        t = torch.arange(first, last + 1, device=audio.device) * hop - pad
        lo, hi = bounds[:, 0, first : last + 1] * hop, bounds[:, 1, first : last + 1] * hop
        counted = ((t >= lo) & (t + fe.n_fft <= hi)).float()
        out[ABS_ERROR, :, first : last + 1] = diff.abs().mean(1) * counted
        out[SIGNED_ERROR, :, first : last + 1] = diff.mean(1) * counted
        out[COUNTED, :, first : last + 1] = counted
        return out


def audio_counts(audio: Tensor, bounds: Tensor) -> Tensor:
    """Per-frame values [FRAME_VALUES, B, L] float32 with only the counts filled: clipped samples (|x| >=
    FULL_SCALE = 1 - 2**-15, at or past the largest 16-bit PCM code) and non-finite samples of audio [B, L * hop]
    per frame (bounds [B, 2, L] gives B and L).

    Seven device passes over audio in its own dtype, the sums written in place: the checks run after every batch's
    forward on the engine's stream, and the float copy, int64 sums and copies of before took 13 launches and 0.18
    ms per gsv_v4 forward of 35 ms (H200, BENCHMARKS.md session 34). Comparisons take the scalar in fp32 (ATen's
    opmath), and no fp16 or bf16 value lies between FULL_SCALE and 1, so the counts are those of the float audio."""
    rows, length = bounds.shape[0], bounds.shape[2]
    magnitude = audio.reshape(rows, length, -1).abs()
    out = torch.zeros((FRAME_VALUES, rows, length), dtype=torch.float32, device=audio.device)
    torch.sum(magnitude >= FULL_SCALE, -1, dtype=torch.float32, out=out[CLIPPED])
    finite = torch.sum(magnitude < math.inf, -1, dtype=torch.float32)  # NaN and inf compare False
    torch.sub(magnitude.shape[-1], finite, out=out[NON_FINITE])
    return out


@dataclass(frozen=True)
class AudioCheck:
    """One utterance's audio checks, from its summed per-frame values."""

    clipped: int
    non_finite: int
    mel_error: float | None
    mel_bias: float | None

    @classmethod
    def from_sums(cls, sums: np.ndarray) -> AudioCheck:
        """From the Stitcher's sums [FRAME_VALUES] (or an empty array: nothing was measured)."""
        if sums.size == 0:
            return cls(0, 0, None, None)
        counted = float(sums[COUNTED])
        error = float(sums[ABS_ERROR] / counted) if counted else None
        bias = float(sums[SIGNED_ERROR] / counted) if counted else None
        return cls(int(round(sums[CLIPPED])), int(round(sums[NON_FINITE])), error, bias)


def suspect_reason(check: AudioCheck, max_mel_error: float, mel_fault: bool = False) -> str | None:
    """None when the audio matches its mel (or was not measured), else a one-line reason naming the likeliest
    cause: a too-loud mel (clipped samples: suspect whatever the mel error, since the audio past full scale is
    lost), a mel quieter or louder than the audio it gave (another convention or scale), or mel frames that do not
    line up (layout, sample rate or weights); either of the last two also where the sound is unlike the model's
    training audio (a sine sweep through the preset's own front end is marked so). mel_fault: the mel's own checks
    already name what is wrong with it (a level or convention the row is marked for): the mel error is then said
    without a guess of its own, which for a shifted mel named a layout."""
    if check.mel_error is None:
        return None
    if check.clipped:
        return (f"{check.clipped} samples clipped at full scale (mel_error {check.mel_error:.2f}): the mel is louder "
                "than the model's training mels (offset or gain added?)")  # fmt: skip
    if check.mel_error <= max_mel_error:
        return None
    head = f"mel_error {check.mel_error:.2f} > check.max_mel_error {max_mel_error:g}: the audio does not match its mel"
    if mel_fault:
        return head
    if check.mel_bias is not None and abs(check.mel_bias) > 0.5 * check.mel_error:
        side = "quieter" if check.mel_bias < 0 else "louder"
        cause = (f"the audio is {side} than its mel by {abs(check.mel_bias):.2f} on average: a mel in another "
                 "convention (log10, dB, normalised; input.mel_scale) or made by another front end, or a sound "
                 "unlike the model's training audio (pure tones, noise)?")  # fmt: skip
    else:
        cause = ("the audio's frames do not follow the mel: [n_frames, n_mels] stored as [n_mels, n_frames], "
                 "another sample rate or hop, weights that are not this preset's, or a sound unlike the model's "
                 "training audio (pure tones, noise)?")  # fmt: skip
    return f"{head}; likeliest cause: {cause}"
