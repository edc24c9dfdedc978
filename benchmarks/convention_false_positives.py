"""False positives of the mel-convention checks: natural-log mels of espeak-ng speech (4 voices) through each preset's
front end, at gains 0.05 / 1 / 1.25 and over white-noise floors of std 0.001 / 0.01 / 0.03 (and 0.003 at gain
0.1), whole and in windows of 64 / 96 / 128 frames (stepped by half a window) where every frame's loudest band is 6
above ln(clip): how many MelChecks.read flags (refused or marked suspect). Also log10 and x0.5 of the same rows
(how many pass). `--snr5`: adds a noise floor 5 dB below the speech's RMS. `--floors`: adds the floors between those
(white noise of std 0.002 / 0.004 / 0.006, pink noise of std 0.003 / 0.006 / 0.01 / 0.03, pink noise 20 dB below
the speech's RMS, 8-bit audio), where natural-log rows' top quarter share is about TOP_QUARTER_SHARE.

    PYTHONPATH=. python -m benchmarks.convention_false_positives
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np

from batchvoc.errors import RowError
from batchvoc.manifest.conventions import MelChecks
from batchvoc.models.mel import load_audio_for, log_mel
from batchvoc.models.presets import get_preset
from tests.speech import eight_bit, pink_noise, speak

PRESETS = ("hifigan_v1_universal", "gsv_v4", "bigvgan_v2_24khz_100band_256x", "bigvgan_v2_44khz_128band_512x")
LEVELS = [(1, 0), (0.05, 0), (1.25, 0), (1, 0.001), (1, 0.01), (1, 0.03), (0.1, 0.003)]
FLOORS = [(1, 0.002), (1, 0.004), (1, 0.006), (1, ("pink", 0.003)), (1, ("pink", 0.006)), (1, ("pink", 0.01)),
          (1, ("pink", 0.03)), (1, ("pink snr", 20)), (1, "8-bit")]  # fmt: skip
WINDOWS = (64, 96, 128)


def recorded(clean: np.ndarray, gain: float, noise, rms: float, rng: np.random.Generator) -> np.ndarray:
    """clean speech at `gain` over a floor: `noise` a white noise's std, "snr5" (white, 5 dB below the speech's
    `rms`), ("pink", std), ("pink snr", dB below the speech's rms) or "8-bit"."""
    audio = gain * clean
    if noise == "8-bit":
        return eight_bit(audio, rng)
    if isinstance(noise, tuple):
        std = noise[1] if noise[0] == "pink" else gain * rms * 10 ** (-noise[1] / 20)
        return audio + std * pink_noise(clean.shape[0], rng)
    std = gain * rms * 10 ** (-5 / 20) if noise == "snr5" else noise
    return audio + std * rng.standard_normal(clean.shape[0])


def flagged(checks: MelChecks, mel: np.ndarray) -> str | None:
    try:
        return checks.read(np.ascontiguousarray(mel, dtype=np.float32))[1]
    except RowError as err:
        return str(err)


def pieces(mel: np.ndarray, floor: float):
    """('whole', mel), then (W, window) for windows of W frames inside stretches of speech."""
    yield "whole", mel
    speaking = np.concatenate([[False], mel.max(0) > floor + 6, [False]])
    edges = np.flatnonzero(np.diff(speaking.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        for w in WINDOWS:
            for at in range(start, stop - w + 1, w // 2):
                yield w, mel[:, at : at + w]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snr5", action="store_true")
    ap.add_argument("--floors", action="store_true")
    ap.add_argument("--detail", action="store_true")
    args = ap.parse_args()
    levels = LEVELS + ([(1, "snr5"), (0.1, "snr5")] if args.snr5 else []) + (FLOORS if args.floors else [])
    rng = np.random.default_rng(7)
    counts = collections.defaultdict(lambda: [0, 0])  # (kind, piece) -> [flagged, total]
    with tempfile.TemporaryDirectory() as tmp:
        speech = speak(Path(tmp))
        for name in PRESETS:
            preset = get_preset(name)
            fe, checks = preset.front_end, MelChecks.for_preset(preset)
            for wav in speech.wavs:
                clean = load_audio_for(fe, wav)
                rms = float(np.sqrt(np.mean(clean.astype(np.float64) ** 2)))
                for gain, noise in levels:
                    audio = recorded(clean, gain, noise, rms, rng)
                    mel = np.asarray(log_mel(np.clip(audio, -1, 1).astype(np.float32), fe))
                    for piece, part in pieces(mel, checks.floor):
                        key = "snr5" if noise == "snr5" else "floors" if (gain, noise) in FLOORS else "ln"
                        rows = ((key, part), (f"{key} log10", part / np.log(10)), (f"{key} x0.5", 0.5 * part))
                        for kind, row in rows:
                            reason = flagged(checks, row)
                            counts[kind, piece][0] += reason is not None
                            counts[kind, piece][1] += 1
                            if args.detail and (kind in ("ln", "snr5", "floors")) == (reason is not None):
                                print(kind, name, wav.name, gain, noise, piece, (reason or "")[:160])
    for (kind, piece), (bad, total) in sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        print(f"{kind:10s} {piece!s:6s} flagged {bad:4d} of {total:4d}")


if __name__ == "__main__":
    main()
