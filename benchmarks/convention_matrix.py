"""Verdict matrix of the mel-convention checks on real speech: espeak-ng sentences (4 voices) through each preset's
front end, at gains and over white-noise floors (SNR against the clip's RMS), written in each convention, each row
judged by MelChecks.read (what a job's reader calls). Prints, per convention, the verdicts counted by kind.

    python benchmarks/convention_matrix.py [--presets a,b] [--detail]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from batchvoc.errors import RowError
from batchvoc.manifest.conventions import MelChecks
from batchvoc.models.mel import load_audio_for, log_mel
from batchvoc.models.presets import get_preset
from tests.speech import speak

PRESETS = ("hifigan_v1_universal", "gsv_v4", "bigvgan_v2_24khz_100band_256x", "bigvgan_v2_44khz_128band_512x")
LN10 = float(np.log(10.0))
GAINS = (1.0, 0.1, "peak")  # "peak": normalised to a peak of 0.99
SNRS = (None, 40, 20, 10)  # dB; None: clean
OFFSETS = (-10, -8, -5, -3, -2, -1, 1, 2, 3, 5, 8, 10)

# the words that name a kind in a reason, first match wins
KINDS = [
    ("placeholder", "placeholder"), ("[T, n_mels]", "layout"), ("[-1, 1]", "gsv_norm"), ("[0, 1]", "minmax"),
    ("mean/std", "zscore"), ("decibels", "dB"), ("power", "power"), ("too loud", "loud"), ("too quiet", "quiet"),
    ("top_db", "top_db"), ("log10", "log10"), ("clamped below", "lowclip"), ("linear", "linear"),
    ("scaled by", "scaled/floor"), ("pile up", "scaled/floor"), ("another scale", "other"),
]  # fmt: skip


def kind_of(reason: str | None) -> str:
    if reason is None:
        return "ok"
    for words, kind in KINDS:
        if words in reason:
            return kind
    return "?"


def verdict(checks: MelChecks, mel: np.ndarray) -> tuple[str, str | None]:
    """('ok' | 'suspect' | 'error', reason)."""
    try:
        reason = checks.read(np.ascontiguousarray(mel, dtype=np.float32))[1]
        return ("ok" if reason is None else "suspect"), reason
    except RowError as err:
        return "error", str(err)


def conventions(raw: np.ndarray, floor: float) -> dict[str, np.ndarray]:
    """raw: ln of the linear magnitude mel, unclamped. The conventions a user may store it in."""
    ln = np.maximum(raw, floor)
    out = {
        "ln": ln,
        "power 2*ln(clamp)": 2 * ln,
        "power ln(clamp(mel^2))": np.maximum(2 * raw, floor),
        "log10": ln / LN10,
        "dB 20log10": 20 * ln / LN10,
        "dB 10log10 power": 10 * np.log10(np.exp(2 * ln)),
        "ln clip 1e-9": np.maximum(raw, np.log(1e-9)),
        "ln unclamped": raw,
        "transposed": np.ascontiguousarray(ln.T).reshape(ln.shape),
        "gsv_norm": (ln + 12) / 14 * 2 - 1,
    }
    for off in OFFSETS:
        out[f"ln {off:+d}"] = ln + off
        out[f"ln1e-9 {off:+d}"] = np.maximum(raw, np.log(1e-9)) + off
        out[f"unclamped {off:+d}"] = raw + off
    return out


def truth_ok(name: str, kind: str) -> bool:
    """Whether a verdict kind names the convention `name` truly is (or passes where it should)."""
    if name == "ln":
        return kind == "ok"
    if name.startswith("power"):
        return kind in ("power", "scaled/floor")
    if name == "log10":
        return kind == "log10"
    if name.startswith("dB"):
        return kind == "dB"
    if name in ("ln clip 1e-9", "ln unclamped"):
        return kind in ("ok", "lowclip", "quiet")  # a lower floor: passes or named as clamped low
    if name == "transposed":
        return kind == "layout"
    if name == "gsv_norm":
        return kind == "gsv_norm"
    # an offset: passing is no fault (a level real audio may have), naming another convention is
    return kind in ("ok", "loud", "quiet", "scaled/floor")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--detail", action="store_true", help="print every wrong verdict's reason")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        speech = speak(Path(tmp))
        table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        wrong: list[tuple] = []
        for name in args.presets.split(","):
            preset = get_preset(name)
            checks = MelChecks.for_preset(preset)
            raw_fe = replace(preset.front_end, clip=1e-30)
            for wav in speech.wavs:
                clean = load_audio_for(preset.front_end, wav)
                rms = float(np.sqrt(np.mean(clean.astype(np.float64) ** 2)))
                for gain in GAINS:
                    for snr in SNRS:
                        g = 0.99 / float(np.abs(clean).max()) if gain == "peak" else gain
                        audio = g * clean
                        if snr is not None:
                            std = g * rms * 10 ** (-snr / 20)
                            audio = audio + std * rng.standard_normal(audio.shape[0])
                        audio = np.clip(audio, -1, 1).astype(np.float32)
                        raw = np.asarray(log_mel(audio, raw_fe), dtype=np.float32)
                        for conv, mel in conventions(raw, checks.floor).items():
                            outcome, reason = verdict(checks, mel)
                            kind = kind_of(reason)
                            table[conv][f"{outcome[0]}:{kind}" if outcome != "ok" else "ok"] += 1
                            if not truth_ok(conv, kind):
                                wrong.append((conv, name, wav.name, gain, snr, outcome, reason))
        for conv, counts in table.items():
            bad = sum(1 for w in wrong if w[0] == conv)
            cells = ", ".join(f"{k} {n}" for k, n in counts.most_common())
            print(f"{conv:24s} wrong {bad:3d}/{sum(counts.values()):3d}  {cells}")
        if args.detail:
            for w in wrong:
                print(*w, sep=" | ")


if __name__ == "__main__":
    main()
