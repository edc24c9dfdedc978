"""Other toolkits' mels judged by the convention checks: espeak-ng speech (4 voices) through each preset's STFT
settings, written the way each toolkit's own feature code writes its mels (re-implemented here in numpy/torch from
their published conventions, not imported), clean and over white noise, read with the input.mel_scale its user
would most likely set, and judged by MelChecks.read (what a job's reader calls). Prints the verdicts per toolkit
and the reasons' first words, so a refusal that names the wrong cause shows.

    PYTHONPATH=. python -m benchmarks.toolkit_mels [--presets a,b] [--detail]

Toolkits (the mistakes they stand for):
- librosa_power_db: librosa.power_to_db(librosa.feature.melspectrogram(power=2)) (ref=1, amin=1e-10, top_db=80), read
  with input.mel_scale=db: the filterbank of the power spectrum, not the square of a magnitude mel (too loud by
  about half the log of the STFT's bin width in Hz)
- librosa_power_db_notop: the same with top_db=None
- librosa_amp_db: librosa.amplitude_to_db of a power=1 mel (top_db=80), read as db: correct, must pass
- coqui: Coqui TTS's AudioProcessor mel: 20*log10(max(1e-5, mel)) - ref_level_db 20, mapped from [-100, 0] dB to
  [-4, 4] and clipped there (signal_norm, symmetric_norm, clip_norm, max_norm=4), read as ln
- coqui_01: the same with symmetric_norm=False, max_norm=1 ([0, 1])
- htk_nonorm: torchaudio.transforms.MelSpectrogram(power=1) defaults (norm=None, mel_scale='htk': triangles of
  height 1), then log(clamp(x, 1e-5)), read as ln
- matcha: Matcha-TTS: the HiFi-GAN natural-log mel normalised with its corpus's mean and std (LJSpeech's
  -5.536622 / 2.116101), read as ln
- perband_z: a per-band mean/std normalisation with corpus statistics (TensorFlowTTS-style, the statistics taken
  over this corpus's clean mels), read as ln
- pwg: ParallelWaveGAN's logmelfilterbank: log10(max(1e-10, mel of magnitudes)) (fmin 80, fmax 7600), read with
  input.mel_scale=log10
- ln: the model's own natural-log mel (must pass)
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np

from batchvoc.errors import RowError
from batchvoc.manifest.conventions import MelChecks
from batchvoc.models.mel import load_audio_for, mel_filterbank
from batchvoc.models.presets import get_preset
from benchmarks.convention_matrix import kind_of
from tests.speech import speak
from tests.toolkit_mels import spectrum, toolkit_mels

PRESETS = ("hifigan_v1_universal", "gsv_v4", "bigvgan_v2_24khz_100band_256x", "bigvgan_v2_44khz_128band_512x")
GAINS = (1.0, 0.1, "peak")
SNRS = (None, 40, 20, 10)
CAUSES = [  # words that name a cause in the reasons, first match wins (then convention_matrix's kinds)
    ("pile up at their maximum", "clipped-range"),
    ("a mel normalised into [", "symmetric-range"),
    ("dB of a power mel", "power_db"),
    ("squeezed and lifted", "range"),
    ("without area normalisation", "filterbank"),
    ("looks like a normalised mel (a corpus", "normalised"),
    ("corpus mean and standard deviation", "scaled/meanstd"),
]


def cause_of(reason: str | None) -> str:
    """A short name for the cause a reason gives."""
    for words, kind in CAUSES:
        if reason is not None and words in reason:
            return kind
    return kind_of(reason)


def verdict(checks: MelChecks, mel: np.ndarray) -> tuple[str, str | None]:
    """('ok' | 'suspect' | 'error', reason) as a job's reader gives them."""
    try:
        reason = checks.read(mel)[1]
        return ("ok" if reason is None else "suspect"), reason
    except RowError as err:
        return "error", str(err)


def recordings(clean: np.ndarray, rng: np.random.Generator):
    """(gain, snr, audio) for every gain and white-noise floor (SNR against the clip's RMS)."""
    rms = float(np.sqrt(np.mean(clean.astype(np.float64) ** 2)))
    for gain in GAINS:
        for snr in SNRS:
            g = 0.99 / float(np.abs(clean).max()) if gain == "peak" else gain
            audio = g * clean.astype(np.float64)
            if snr is not None:
                audio = audio + g * rms * 10 ** (-snr / 20) * rng.standard_normal(audio.shape[0])
            yield gain, snr, np.clip(audio, -1, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--detail", action="store_true", help="print every verdict's reason")
    ap.add_argument("--examples", action="store_true", help="print one reason per toolkit and verdict kind")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    examples: dict[tuple, str | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        speech = speak(Path(tmp))
        for name in args.presets.split(","):
            preset = get_preset(name)
            fe = preset.front_end
            cleans = [load_audio_for(fe, wav) for wav in speech.wavs]
            lns = np.concatenate([np.log(np.maximum(mel_filterbank(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin,
                                                                   fe.fmax) @ spectrum(c, fe), 1e-5))
                                  for c in cleans], axis=1)  # fmt: skip
            band_stats = (lns.mean(axis=1), np.maximum(lns.std(axis=1), 0.5))  # bands espeak-ng leaves empty
            for wav, clean in zip(speech.wavs, cleans, strict=True):
                for gain, snr, audio in recordings(clean, rng):
                    for toolkit, (mel, scale) in toolkit_mels(audio, fe, band_stats).items():
                        checks = MelChecks.for_preset(preset, scale=scale)
                        outcome, reason = verdict(checks, mel)
                        table[toolkit][f"{outcome}:{cause_of(reason)}" if reason else "ok"] += 1
                        examples.setdefault((toolkit, outcome, cause_of(reason)), reason)
                        if args.detail:
                            print(toolkit, name, wav.name, gain, snr, outcome, reason, sep=" | ")
    for toolkit, counts in table.items():
        total = sum(counts.values())
        print(f"{toolkit:24s} {total:3d} rows: " + ", ".join(f"{cell} {n}" for cell, n in counts.most_common()))
    if args.examples:
        for (toolkit, outcome, kind), reason in sorted(examples.items()):
            print(f"{toolkit} {outcome}:{kind}: {reason}")


if __name__ == "__main__":
    main()
