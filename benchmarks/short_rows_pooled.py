"""The pooled judgement of short rows (batchvoc/manifest/short_rows.py) on espeak-ng speech: natural-log mels
through each preset's front end at gains 0.05 / 1 / 1.25 and white-noise floors of std 0.001 / 0.01 / 0.03 (and
0.003 at gain 0.1), cut into consecutive rows of 16, 32, 48 or 63 frames (from the first to the last frame of
speech, and from the whole utterance), grouped by 2, 4 or 16 rows and pooled: how many pools looks_compressed
flags, natural-log (false doubts) and log10 / x0.5 (caught), by pooled frames under 96 or not.

    PYTHONPATH=. python benchmarks/short_rows_pooled.py [PRESET ...]
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

from batchvoc.manifest.conventions import MIN_FRAMES_FOR_SPAN, MelChecks, looks_compressed
from batchvoc.manifest.short_rows import POOLED_FRAMES
from batchvoc.models.mel import load_audio_for, log_mel
from batchvoc.models.presets import get_preset
from tests.speech import speak

PRESETS = ("hifigan_v1_universal", "gsv_v4", "bigvgan_v2_24khz_100band_256x", "bigvgan_v2_44khz_128band_512x")
LEVELS = [(1, 0), (0.05, 0), (1.25, 0), (1, 0.001), (1, 0.01), (1, 0.03), (0.1, 0.003)]
KINDS = (("ln", 1.0), ("log10", 1 / np.log(10)), ("x0.5", 0.5))


def pools(mel: np.ndarray, floor: float):
    """(rows' frames, rows per pool, the pool) for every way of cutting `mel` [n_mels, T] into short rows."""
    speaking = np.flatnonzero(mel.max(0) > floor + 6)
    for part in (mel[:, speaking[0] : speaking[-1] + 1], mel):
        for frames in (16, 32, 48, MIN_FRAMES_FOR_SPAN - 1):
            rows = [part[:, at : at + frames] for at in range(0, part.shape[1] - frames + 1, frames)]
            for size in (2, 4, 16):
                for first in range(0, len(rows) - size + 1, size):
                    yield frames, size, np.concatenate(rows[first : first + size], axis=1)


def main(names: list[str]) -> None:
    rng = np.random.default_rng(7)
    counts = collections.defaultdict(lambda: [0, 0])  # (kind, pooled frames >= POOLED_FRAMES) -> [flagged, pools]
    with tempfile.TemporaryDirectory() as tmp:
        speech = speak(Path(tmp))
        for name in names:
            preset = get_preset(name)
            checks = MelChecks.for_preset(preset)
            for wav in speech.wavs:
                clean = load_audio_for(preset.front_end, wav)
                for gain, noise in LEVELS:
                    audio = np.clip(gain * clean + noise * rng.standard_normal(clean.shape[0]), -1, 1)
                    mel = np.asarray(log_mel(audio.astype(np.float32), preset.front_end))
                    for _, _, pool in pools(mel, checks.floor):
                        if pool.shape[1] < MIN_FRAMES_FOR_SPAN:
                            continue
                        for kind, factor in KINDS:
                            tally = counts[kind, pool.shape[1] >= POOLED_FRAMES]
                            tally[0] += looks_compressed(pool * factor) is not None
                            tally[1] += 1
    for (kind, enough), (flagged, total) in sorted(counts.items()):
        print(f"{kind:6s} pooled frames {'>=' if enough else '< '} {POOLED_FRAMES}: flagged {flagged:5d} of {total:5d}")


if __name__ == "__main__":
    main(sys.argv[1:] or list(PRESETS))
