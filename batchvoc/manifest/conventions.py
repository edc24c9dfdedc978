"""Mel conventions: convert a row's mel to the model's natural-log mel (input.mel_scale) and tell, per row and
cheaply, when it looks like another convention (check.mel_convention).

The model was trained on ln(clamp(mel, clip)): values from the front end's log-mel floor ln(clip) (-11.51 for
1e-5) up to about the ceiling a full-scale signal makes (~2.4). log10, dB and normalised mels, and [T, n_mels]
arrays read as [n_mels, T], all vocode into plausible-looking garbage; the checks below tell them apart by
value range, by where the values pile up (a clamped floor), and by which reading of the array is smoother.

Scale and level are judged apart: the spread of the values (1st to 99th percentile) does not move when a constant
is added, so it tells the convention (dB spreads tens, log10 ln's / 2.3, a power mel's log twice ln's), while the
level (where the clamped floor sits, how far the peak passes full scale) tells a natural-log mel that is too loud
or too quiet (an offset added): such a row is vocoded and marked suspect, and refused only when its level is so
far off (LEVEL_REFUSED) that no audio of this front end could carry it.

Verdicts per convention (benchmarks/convention_matrix.py: 4 espeak-ng sentences, 4 voices, through the 4 front ends,
at gains 1 / 0.1 / peak-normalised to 0.99, clean and over white noise 40 / 20 / 10 dB below the speech's RMS:
192 rows each): ln, ln clamped at 1e-9 or unclamped: all pass; log10: all (171 refused, 21 marked); dB (20 log10 and
10 log10 of power), transposed, gsv_norm: all refused and named; offsets -10..+10 (clamped at 1e-5, at 1e-9 or
unclamped): passed (a level real audio may have), or named too loud / too quiet / a shifted floor, never another
convention except the case below. What the values alone cannot tell, measured there:
- the log of a power mel (2 x ln) of a noisy recording: its noise floor (doubled) lifts it off any clamped floor.
  Named a power mel (95 of 192: 57 refused, 38 marked) where its floor is 2 ln(clip) (clean: refused), or where
  its 1st percentile is more than BELOW_FLOOR below ln(clip) and its peak further above that than a natural-log mel
  reaches (ln(clip) to full scale, plus BELOW_FLOOR: at 40 dB SNR 17.0-17.8 apart against 16.4-17.1); that one
  only marked suspect (a predicted mel whose silences undershoot ln(clip) by more than BELOW_FLOOR looks the same;
  refused only as far off as a too-quiet row is). With the noise floor 10-20 dB below
  the speech it spreads 8.2-10.9 from a 1st percentile of -8.5..-11.4 (gain 1 or peak-normalised: passes, 62) or
  -13.0..-16.0 (gain 0.1: 21 of 32 marked too quiet, 11 pass), as a natural-log mel of cleaner speech does.
  A power mel clamped at 1e-5 before its log (ln(clamp(mel^2, 1e-5))) piles up at ln(clip) itself and spreads
  5.9-11.8: it passes (188 of 192; 4 peak-normalised rows marked too loud). The fine texture of the noise floor
  tells them (the median step between quiet frames against white noise's through the same front end: noisy
  natural-log rows 1.0-1.5x, noisy 2 x ln rows 2.0-2.5x) but not in clean or studio-quiet rows, where speech
  crosses the quiet frames (natural-log rows 1.4-3.0x): not used.
- a natural-log mel of loud speech over a noise floor 10 dB below it, shifted +3: mean -0.25..0.19, standard
  deviation 0.78-0.91, refused as z-scored (18 of 192): a z-scored mel of the same speech has the same values.
- x0.5 of speech over a noise floor 30-40 dB below it, in windows of 64-128 frames: spans 3.1-3.6 with a top
  quarter of 0.5-0.57, as natural-log speech 5 dB above its noise floor does: passes.

Other toolkits' mels (benchmarks/toolkit_mels.py: the same 192 recordings, written as each toolkit writes its mels,
read with the input.mel_scale its user would set). ParallelWaveGAN's log10(max(1e-10, mel)) read as log10: all pass
(log10 and db clamp at ln(clip) on reading; 42 were refused as a power mel, its floor at 2 ln(clip)). librosa's
power_to_db of a power=2 mel read as db (about +1.6 too loud): 96 marked suspect naming the power mel (those
passing full scale: LOUD_MARGIN_DB), 96 quieter ones pass (was: all). Coqui TTS's [-4, 4]: 185 refused or marked,
named as normalised (7 quiet noisy rows pass; was 68 passing, the others named log10). torchaudio's norm=None
filterbank: 144 marked (its silence at ln(clip) names the filterbank), the 48 at gain 0.1 pass (peaking under full
scale). Matcha-TTS's corpus mean/std: all refused or marked, named as normalised (was: log10 or scaled).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from batchvoc.errors import API_KEYS as API_KEYS  # how reasons name the settings (errors.Keys), kept importable here
from batchvoc.errors import JOB_KEYS, ConfigError, Keys, RowError

log = logging.getLogger(__name__)

SCALE_KEY, MODE_KEY = JOB_KEYS.scale, JOB_KEYS.mode
SCALES = ("ln", "log10", "db", "gsv_norm")
MODES = ("error", "warn", "off")


GSV_SPEC_MIN, GSV_SPEC_MAX = -12.0, 2.0  # GPT-SoVITS v3/v4 norm_spec: (x - min) / (max - min) * 2 - 1
LN10 = math.log(10.0)
DEFAULT_FLOOR = math.log(1e-5)  # every preset's front end clamps its mel at 1e-5

FLOOR_MASS, FLOOR_MIN_VALUES = 0.01, 10  # a clamped floor: this share of the values (and this many) at the minimum
BELOW_FLOOR = 2.5  # the 1st percentile this far below ln(clip): not a natural-log mel of this front end
# (a TTS model's predicted mels undershoot the floor a little in silences: they must pass)
ABOVE_FLOOR = 1.5  # a clamped floor this far above ln(clip), with a compressed span: a scaled mel
ABOVE_CEILING = 6.0  # the maximum this far above the full-scale ceiling: dB or linear values
COMPRESSED_SPAN = 0.6  # a clamped floor above ln(clip) with a span below this share of ln's: a scaled mel
COMPRESSED_Q1 = -3.5  # ln mels of speech reach far below this (toward the floor) somewhere in a row
COMPRESSED_PEAK = 0.6  # ... and a row read as log10 or x0.5 by that peaks below this share of the full-scale ceiling
# (log10 at most 0.43 of it, x0.5 0.5): a natural-log mel of a loud recording over a noise floor 10 dB below the
# speech (1st percentile -4.6..-4.2), shifted +1 (or louder audio) peaks at 0.8-0.9 of it with its 1st percentile
# at -3.5..-3.0, and was refused as log10 (benchmarks/convention_matrix.py)
SMOOTHER_AS_TRANSPOSED = 0.8  # total variation read as [T, n_mels] / read as [n_mels, T] below this: transposed
MIN_FRAMES_FOR_LAYOUT = 16  # fewer frames (or bands) than this: the layout statistic is too noisy to trust
STATIONARY = 0.02  # variation across frames below this share of that across bands: a stationary stretch, whose
# layout cannot be judged (an unclamped natural-log mel of digital silence sits at the front end's eps floor, the
# same in every frame, 0 of it; read as [T, n_mels] it is smoother, and 24-frame windows of it were called
# transposed); [T, n_mels] arrays read as given: 0.095 or more, natural-log speech 0.35 or more in 99% of windows
MAX_STAT_VALUES = 1 << 14  # percentiles and floor mass on at most this many values (an even subsample)
SPREAD = (1, 50, 75, 99)  # the percentiles SampleStats takes (looks_like: the 1st, median and 99th)
# A compressed row: log10, or a natural-log mel scaled down, cut where it never reaches its clamped floor (from
# mid-speech). Its values span little (1st to 99th percentile, SPAN_OF_SPEECH) and the compression reaches its
# loudest values too (the top quarter, 75th to 99th percentile, is no wider a share of the span than in speech,
# TOP_QUARTER_SHARE); a noisy recording's span is narrow only from below (its raised floor), its top quarter keeps
# the width speech has. Measured (tests/manifest/test_conventions.py has the espeak-ng part) on 7 utterances (4
# espeak-ng voices, a CMU ARCTIC recording, 2 of the demo's synthetic clips), whole and in windows of 64-128 frames
# where every frame's loudest band is 6 above ln(clip), through the HiFi-GAN 22 kHz, gsv_v4, BigVGAN 24 kHz and
# 44 kHz front ends, at gains 0.05 / 1 / 1.25 and over white-noise floors of std 0.001, 0.01, 0.03 (and 0.003 at
# gain 0.1). Natural-log rows flagged: none of the 196 whole utterances or of the windows of 128 frames; 1 of 420
# windows of 96 frames, 4 of 861 of 64. log10 and x0.5 rows flagged: all, whole or windows of >= 64 frames, except
# with the 44 kHz front end (128 bands): 52 of 58 windows of 64 frames, 25 of 28 of 96, all of 128 and whole.
# Flagged rows are vocoded and marked suspect, never refused: the values alone cannot be sure. Re-measured on the
# espeak-ng part alone (benchmarks/convention_false_positives.py: 4 sentences x 4 front ends x those 7 levels, windows
# stepped by half their length), before and after NARROW_SPAN and COMPRESSED_PEAK: natural-log rows flagged 0 of 112
# whole, 0 of 196 windows of 128 frames, 3 of 316 of 96, 6 of 580 of 64 (unchanged; over a noise floor 5 dB below
# the speech: none of 32 / 114 / 170 / 272); log10 all; x0.5 all whole (was 109 of 112), 191 of 196 windows of 128
# (190), 309 of 316 of 96 (307), 567 of 580 of 64 (555). With TOP_QUARTER_WIDTH (below): natural-log rows 0 of
# every size, log10 and x0.5 as before.
SPAN_OF_SPEECH = 6.0  # natural-log units; log10 of speech spans 3.0-5.3, x0.5 3.5-6.1, clean ln speech 6.9-12.1
TOP_QUARTER_SHARE = 0.5  # medians: scaled rows 0.3-0.4 (as their speech), ln rows over a noise floor 0.6-0.7
TOP_QUARTER_WIDTH = 2.0  # natural-log units: a top quarter (75th to 99th percentile) this wide or wider is speech's
# own loudest values, which a noise floor does not reach and a scale narrows (log10 of speech 1.0-1.8, x0.5 1.2-2.1,
# natural-log speech 2.1 or more where its span is under SPAN_OF_SPEECH). By the share alone, natural-log rows over a
# floor between those above (white noise of std 0.002-0.006, pink of 0.003-0.03, pink 20 dB below the speech, 8-bit
# audio: shares 0.45-0.5) were marked: 9 of 144 whole rows, 40 of 477 windows of 128 frames, 62 of 716 of 96, 124 of
# 1,162 of 64; with the width 0, 0, 0 and 1, and every log10 and x0.5 row flagged as before
# (benchmarks/convention_false_positives.py --floors --snr5; tests/manifest/test_conventions.py)
MIN_FRAMES_FOR_SPAN = 64  # shorter rows: too few values to tell
NARROW_SPAN = 3.0  # a span below this is log10 or scaled whatever its top quarter (LN_SPREAD's lower bound):
# natural-log speech spans 4.1-12.1 whole and 3.7 or more in windows of 64 frames over the noise floors above, 3.6 /
# 3.2 at 5 dB SNR (white noise against the speech's RMS) and 3.0 / 2.7 at 0 dB (windows of 64 frames under 3.0 at
# 0 dB are marked); log10 or x0.5 of a quiet recording over a noise floor 20-30 dB below the speech span 2.0-2.8,
# their top quarter as wide as a noisy row's (0.5-0.7), and passed (benchmarks/convention_false_positives.py)
QUIET_TOP = -4.0  # a row whose 99th percentile is below this (background noise alone) is not judged; scaled speech
# stays above -2 (log10 of speech 26 dB quieter than espeak-ng's: about -1.3)
BAND_FLOOR_RANGE = 0.5  # band minima (where values pile up) within this: one clamp before the filterbank (ESPnet's
# LogMelFbank: 1e-5 per bin, its bands' weights summing to about the same, -6.35..-6.30 in log10); natural-log mels
# of a noise floor have no repeated band minimum
LAYOUT_FRAMES = 256  # the layout statistic on at most this many frames from the middle of the row
RAISED_FLOOR = 0.5  # a clamped floor this far above ln(clip): another clamp, an offset or a scaled mel (a doubt)
# Spread (1st to 99th percentile) of real mels (tests/manifest/test_conventions.py's espeak-ng speech through the
# four front ends, clean, at gains 0.05 / 1.25 and over noise floors of std 0.01 / 0.03): natural log 4.1-12.0,
# its log10 4.8-5.1, 2 x ln (log of a power mel) 21.9-23.5, dB 95-102 (dB ref=max top_db=80: 66-70).
LN_SPREAD = (3.0, 16.0)  # a natural-log mel's spread, shifted or not (wider: another scale)
DB_SPREAD = 30.0  # a spread of tens: decibels, whatever their reference (offset)
LINEAR_MEDIAN = 0.1  # non-negative values whose median is below this share of their 99th percentile: linear
# magnitudes (heavy-tailed, 0.004-0.013 measured); natural-log mels shifted above 0 and dB above 0 give 0.5-0.8
LINEAR_TOP = 0.3  # non-negative values whose 75th percentile is below this share of their 99th: linear magnitudes,
# whatever their level (a quiet recording's peak under 1 read as a [0, 1]-normalised or a gsv_norm mel): 0.02-0.30 in
# speech over any floor under it, [0, 1]-normalised log-mels (min-max or a fixed dB range) 0.37-0.93 (espeak-ng
# speech, 4 presets, gains 0.01-1, whole and in windows)
LOUD_MARGIN = 0.3  # a peak this far above the full-scale ceiling: too loud. Full-scale square waves and sines of
# 30 Hz-6 kHz peak at most 0.12-0.21 above it (the 4 presets' front ends); espeak-ng speech, peak-normalised to 0.99
# or at gain 1.25, 0.86 or more below it. At 1.0, a power mel's dB read with input.mel_scale=db (about +1.6) and
# Coqui TTS's [-4, 4] mels over a noise floor (+0.3..+1.05) passed (benchmarks/toolkit_mels.py)
LOUD_MARGIN_DB = 0.0  # ... read with input.mel_scale=db: past full scale at all. The dB mels most toolkits write
# (librosa's power_to_db of a power=2 mel) read about 1.6 too loud there; their speech at gain 1 or peak-normalised
# peaks -0.08..+0.74 from the ceiling, amplitude_to_db of a magnitude mel (what db reads) 0.86 or more below it
LEVEL_REFUSED = ABOVE_CEILING  # an offset this large (either way): no audio through this front end gives the values
# (a mel without a clamped floor: its 1st percentile this far plus BELOW_FLOOR below ln(clip), the undershoot a
# predicted mel is allowed counting in its favour)
# a clamped floor at or above about 0 (the factor that would scale ln(clip) there is 0 or less, or shows as 0.00): a
# normalised mel (min-max, or a dB mel mapped to [0, 1] by a fixed range: a little above 1 where audio is louder)
NORMALISED = (
    "a normalised mel (e.g. min-max to [0, 1]: a floor at about 0 or above, where a natural-log mel's lies "
    "far below 0, scaled or not)"
)
Z_MEAN, Z_STD = 0.25, 0.25  # mean within this of 0 and std within this of 1: a mean/std (z-score) normalised mel


def to_natural_log(mel: np.ndarray, scale: str, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """mel [n_mels, n_frames] in `scale` (input.mel_scale) -> float32 natural-log mel of magnitudes.

    ln: as is; log10: x * ln(10); db: 20*log10 (or 10*log10 of power) -> x * ln(10) / 20; gsv_norm: GPT-SoVITS
    v3/v4's normalised spectrogram in [-1, 1] -> (x + 1) / 2 * (spec_max - spec_min) + spec_min. log10 and db are
    clamped at the model's `floor` (ln(clip)) too: those toolkits clamp lower (ParallelWaveGAN's and ESPnet's
    log10(max(1e-10, mel)), librosa's amin=1e-10 of power), and the values below the model's floor are its silence.
    """
    mel = np.asarray(mel, dtype=np.float32)
    if scale == "ln":
        return mel
    if scale == "log10":
        return np.maximum(mel * np.float32(LN10), np.float32(floor))
    if scale == "db":
        return np.maximum(mel * np.float32(LN10 / 20.0), np.float32(floor))
    if scale == "gsv_norm":
        return (mel + 1.0) * np.float32((GSV_SPEC_MAX - GSV_SPEC_MIN) / 2.0) + np.float32(GSV_SPEC_MIN)
    raise ConfigError(SCALE_KEY, f"unknown mel scale {scale!r}; use one of {', '.join(SCALES)}")


@lru_cache(maxsize=32)
def full_scale_ceiling(front_end) -> float:
    """The largest log-mel value a full-scale signal (a 100 Hz square wave) makes through `front_end`."""
    from batchvoc.models.mel import log_mel

    n = front_end.sample_rate // 4
    square = np.sign(np.sin(2 * np.pi * 100.0 * np.arange(n) / front_end.sample_rate)).astype(np.float32)
    return float(log_mel(square, front_end).max())


@dataclass(frozen=True)
class MelChecks:
    """What a row's mel must look like for one model, and how to read it.

    n_mels: bands the model takes; floor: ln(clip) of its front end; ceiling: log-mel of full-scale audio;
    rates: accepted (sample_rate, hop_length) pairs (the vocoder's output and its front end's);
    scale: input.mel_scale; mode: check.mel_convention (error | warn | off); keys: how reasons name those two
    (JOB_KEYS, or API_KEYS for the Python API's keywords).
    """

    n_mels: int
    floor: float = math.log(1e-5)
    ceiling: float = 2.4
    rates: tuple[tuple[int, int], ...] = ()
    scale: str = "ln"
    mode: str = "error"
    keys: Keys = JOB_KEYS

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ConfigError(SCALE_KEY, f"unknown mel scale {self.scale!r}; use one of {', '.join(SCALES)}")
        if self.mode not in MODES:
            raise ConfigError(MODE_KEY, f"{self.mode!r} is not one of {', '.join(MODES)}")

    @classmethod
    def for_preset(cls, preset, scale: str = "ln", mode: str = "error", keys: Keys = JOB_KEYS) -> MelChecks:
        """The checks for a presets.Preset (as load_vocoder returns it: n_mels and hop of the built model)."""
        fe = preset.front_end
        rates = ((preset.sample_rate, preset.hop_length), (fe.sample_rate, fe.hop_length))
        return cls(preset.n_mels, math.log(fe.clip), full_scale_ceiling(fe), tuple(dict.fromkeys(rates)),
                   scale, mode, keys)  # fmt: skip

    def check_declared(self, sample_rate=None, hop_length=None, n_mels=None) -> None:
        """RowError naming the column when a row's declared sample_rate, hop_length or n_mels is not the model's."""
        if n_mels is not None and _whole(n_mels, "n_mels") != self.n_mels:
            raise RowError(f"n_mels is {n_mels}, the model takes {self.n_mels} mel bands")
        if not self.rates:
            return
        rates = {sr for sr, _ in self.rates}
        hops = {hop for _, hop in self.rates}
        if sample_rate is not None and _whole(sample_rate, "sample_rate") not in rates:
            raise RowError(f"sample_rate is {sample_rate} Hz: the mel was made at another rate than the model's "
                           f"{_either(rates)} Hz (its audio would play at the wrong speed and pitch)")  # fmt: skip
        if hop_length is not None and _whole(hop_length, "hop_length") not in hops:
            raise RowError(f"hop_length is {hop_length}, the model's frames are {_either(hops)} samples")
        if sample_rate is not None and hop_length is not None and (int(sample_rate), int(hop_length)) not in self.rates:
            pairs = " or ".join(f"{sr} Hz with hop {hop}" for sr, hop in self.rates)
            raise RowError(f"sample_rate {sample_rate} with hop_length {hop_length} is not the model's frame rate "
                           f"({pairs})")  # fmt: skip

    def read(self, mel: np.ndarray) -> tuple[np.ndarray, str | None]:
        """(the natural-log mel [n_mels, n_frames] float32, a warning or None); RowError in error mode.

        The mel is converted from input.mel_scale first; the checks then judge the converted values. A warning (the
        row is vocoded and marked suspect) is another convention let through by check.mel_convention=warn, or in
        either mode a row that only may be one (looks_compressed) or a natural-log mel whose level is off short of
        refused (level_fault: too loud or too quiet; raised_floor).
        """
        mel = to_natural_log(mel, self.scale, self.floor)
        if self.mode == "off":
            return mel, None
        stats = SampleStats.of(mel)  # one partial sort for both judgements
        problem = looks_like(mel, self.floor, self.ceiling, stats, self.keys)
        if problem is None:  # weaker signs: vocoded, and the row marked suspect, in either mode
            fault = level_fault(mel, self.floor, self.ceiling, stats, self.scale)
            loud = fault is not None and fault.offset > 0  # past full scale: no log10 or scaled-down mel peaks there
            doubt = ((None if loud else looks_compressed(mel, stats, self.keys, self.ceiling))
                     or (fault and f"{fault.reason} (vocoded, marked suspect)")
                     or raised_floor(mel, self.floor, self.ceiling))  # fmt: skip
            return mel, None if doubt is None else self.read_as(doubt)
        problem = self.read_as(problem)
        if self.mode == "error":
            raise RowError(problem)
        return mel, f"{problem} ({self.keys.set('mode', 'warn')}: vocoded anyway)"

    def read_as(self, problem: str) -> str:
        """A reason as the user reads it: under another input.mel_scale than ln, asking whether that is the scale."""
        if self.scale != "ln":
            problem += f" (read with {self.keys.set_scale(self.scale)}: is that the scale these mels are in?)"
        return problem


@dataclass(frozen=True)
class SampleStats:
    """The percentiles the checks take of a mel's values (an even subsample of at most MAX_STAT_VALUES), exactly
    as np.percentile gives them: `q1` as np.percentile(values, 1) and `spread` as np.percentile(values,
    SPREAD) (1st, 50th, 75th, 99th; numpy interpolates a scalar q in float32, a list in float64), from one partial
    sort instead of two (and without np.percentile's Python overhead, twice per row)."""

    q1: float
    spread: tuple[float, float, float, float]

    @property
    def width(self) -> float:
        """1st to 99th percentile: the scale of the values, whatever their offset."""
        return self.spread[-1] - self.spread[0]

    @classmethod
    def of(cls, mel: np.ndarray) -> SampleStats:
        """The stats of mel [n_mels, n_frames] (finite values; NaN: np.percentile itself)."""
        values = _sample(mel)
        fractions = np.true_divide(SPREAD, 100)
        at = (values.size - 1) * fractions  # numpy's 'linear' method, step for step
        below = np.floor(at)
        above = below + 1
        last = at >= values.size - 1
        below[last], above[last] = -1, -1
        below, above = below.astype(np.intp), above.astype(np.intp)
        order = np.partition(values, np.unique(np.concatenate(([0, values.size - 1], below % values.size,
                                                                above % values.size))))  # fmt: skip
        if np.isnan(order[-1]):
            return cls(float(np.percentile(values, SPREAD[0])),
                       tuple(float(v) for v in np.percentile(values, list(SPREAD))))  # fmt: skip
        low, high = order[below], order[above]
        weight = at - below  # float64
        q1 = float(_lerp(low[0], high[0], float(weight[0])))
        return cls(q1, tuple(float(v) for v in _lerp(low, high, weight)))


def _lerp(a, b, t):
    """numpy's quantile interpolation (numpy/lib/_function_base_impl.py, _lerp): float32 a, b with a Python float
    t give float32, with a float64 array t float64."""
    diff = b - a
    if np.ndim(t):
        return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def looks_like(mel: np.ndarray, floor: float, ceiling: float, stats: SampleStats | None = None,
               keys: Keys = JOB_KEYS) -> str | None:  # fmt: skip
    """Why `mel` [n_mels, n_frames] does not look like a natural-log mel with this floor and ceiling, or None.

    The reason names the convention it looks like and the setting that reads it (input.mel_scale, spelled as
    `keys` says), or for a natural-log mel whose level is off by more than LEVEL_REFUSED, how far (level_fault;
    a smaller offset is a doubt, MelChecks.read's). stats: the mel's SampleStats where the caller has them.
    """
    values = _sample(mel)
    lo, hi = float(mel.min()), float(mel.max())
    stats = stats or SampleStats.of(mel)
    _, median, q75, q99 = stats.spread
    q1 = stats.q1
    at_floor = _piles_up_at(values, lo) and hi - lo > 1e-3
    fix = f"store ln(mel) clamped at {floor:.2f}, or name the scale with {keys.set_scale('log10', 'db', 'gsv_norm')}"
    if hi - lo <= 1e-6 and abs(lo - floor) > 1e-3:
        return f"every value is {lo + 0.0:.4g}: a placeholder, not a log-mel (silence is {floor:.2f})"
    if lo >= 0.0 and q75 < LINEAR_TOP * q99:  # heavy-tailed at any level: magnitudes, before the ranges below
        return _linear(hi)
    if lo >= 0.0 and hi <= 1.0 + 1e-3:
        return f"values lie in [0, 1]: looks like a normalised mel (min-max to [0, 1]); {fix}"
    if lo >= -1.0 - 1e-3 and hi <= max(1.0, _gsv_norm_of(ceiling)) + 1e-3:
        top = "1" if hi <= 1.0 + 1e-3 else f"{hi:.2f}"  # audio louder than spec_max normalises above 1
        return (f"values lie in [-1, {top}]: looks like a normalised mel (GPT-SoVITS's spec_min -12 / spec_max 2 "
                f"normalisation: set {keys.set_scale('gsv_norm')})")  # fmt: skip
    if lo >= 0.0 and median < LINEAR_MEDIAN * q99:  # heavy-tailed, piled up near 0: magnitudes, not their log
        return _linear(hi)
    if _piles_up_at(-values, -hi) and hi - lo > 1e-3:  # a clipped ceiling, before the level and scale checks
        return _clipped_ceiling(lo, hi, at_floor, floor)
    outside = q1 < floor - BELOW_FLOOR or hi > ceiling + ABOVE_CEILING
    if outside and stats.width >= DB_SPREAD:
        return _decibels(lo, hi, stats.width, floor, ceiling, keys)
    mean, std = float(values.mean()), float(values.std())
    if abs(mean) < Z_MEAN and abs(std - 1.0) < Z_STD:
        return (f"values have mean {mean:.2f} and standard deviation {std:.2f}: looks like a mean/std-normalised "
                f"(z-scored) mel (its own statistics, or a corpus's: Matcha-TTS's), or one mapped into a range around "
                f"0 (Coqui TTS's [-4, 4] over a noise floor); undo the normalisation (x * std + mean, with the "
                f"statistics it used, or the map's inverse) and store the natural-log mel clamped at "
                f"{floor:.2f}")  # fmt: skip
    decade = _decade(lo) if at_floor and lo > floor + RAISED_FLOOR and not _top_db_below(hi - lo) else None
    if decade is not None and hi < (ceiling + LOUD_MARGIN) / LN10:  # log10 of audio through this front end
        clamp = "" if decade == -5 else f" (it clamps at ln(clip) = {floor:.2f}, 1e-5, on reading)"
        symmetric = f", or a mel normalised into [{lo:.0f}, {-lo:.0f}] (Coqui TTS's)" if hi <= -lo else ""
        return (f"clamped floor at {lo:.2f} = log10(1e{decade}), values up to {hi:.2f}, under the "
                f"{(ceiling + LOUD_MARGIN) / LN10:.2f} that log10 of full-scale audio reaches: looks like log10 "
                f"(ln / 2.303) clamped at 1e{decade} (ParallelWaveGAN's and ESPnet's eps is 1e-10){symmetric}; set "
                f"{keys.set_scale('log10')}{clamp}")  # fmt: skip
    if at_floor and lo > floor + ABOVE_FLOOR and hi - lo < COMPRESSED_SPAN * (ceiling - floor):
        ratio = _scale_estimate(lo, floor)
        if _top_db_below(hi - lo):  # before log10: such a floor may land near log10(1e-5) = -5
            decibels = round((hi - lo) * 20 / LN10)
            guess = f"a mel clamped {decibels} dB below its maximum (top_db={decibels}): silences far above the model's"
            hint = f"store ln(mel) clamped at {floor:.2f} (top_db=None)"
        elif ratio is None:  # a floor at about 0 or above: no factor scales ln(clip) there
            guess = NORMALISED
            hint = (f"undo the normalisation (with the minimum and maximum it used) and store ln(mel) clamped at "
                    f"{floor:.2f}")  # fmt: skip
        elif abs(ratio - 1 / LN10) < 0.04:
            guess, hint = "log10 (ln / 2.303)", f"set {keys.set_scale('log10')}"
        elif abs(lo - round(lo)) < 1e-3 and hi <= -lo + 1e-3:  # a symmetric range's whole-number bound
            m = -round(lo)
            guess = (f"a mel normalised into [-{m}, {m}] and clipped at -{m} (Coqui TTS's and Tacotron's, max_norm="
                     f"{m}), or a natural-log mel scaled by {ratio:.2f}")  # fmt: skip
            hint = (f"undo the normalisation (Coqui's default, min_level_db=-100 and ref_level_db=20: the natural-log "
                    f"mel is ((x + {m}) / {2 * m} * 100 - 80) * ln(10) / 20) and store the natural-log mel clamped at "
                    f"{floor:.2f}; {keys.scale} reads log10, db and gsv_norm mels, not other ranges")  # fmt: skip
        else:  # no scale key undoes an arbitrary factor: say which one would
            guess = (f"a natural-log mel scaled by {ratio:.2f}, normalised with a corpus mean and standard deviation "
                     f"((ln(mel) - mean) / std: Matcha-TTS's LJSpeech statistics -5.54 / 2.12 put ln(clip) at "
                     f"{(floor + 5.536622) / 2.116101:.2f}), mapped into another range (Coqui TTS's and Tacotron's "
                     f"[-4, 4]), or "
                     f"clamped at {math.exp(lo):.2g} instead of {math.exp(floor):.0e}")  # fmt: skip
            hint = (f"store the natural-log mel itself, clamped at {floor:.2f} (a scaled one: these values times "
                    f"{1 / ratio:.3g}; a mapped one: the map's inverse); {keys.scale} reads log10, db and gsv_norm "
                    "mels, not other factors or ranges")  # fmt: skip
        return (f"clamped floor at {lo:.2f} where ln(clip) is {floor:.2f}, values up to {hi:.2f}: "
                f"looks like {guess}; {hint}")  # fmt: skip
    fault = level_fault(mel, floor, ceiling, stats)
    if fault is not None and fault.refused:
        return f"{fault.reason}; no audio through this front end gives such values"
    if lo >= 0.0 and fault is None:  # a natural-log mel shifted past 0 is a level fault, not magnitudes
        return (f"no negative values ({lo:.3g} .. {hi:.3g}), not heavy-tailed as magnitudes are: looks like a "
                f"normalised log-mel lifted above 0 (a corpus mean and standard deviation, as Matcha-TTS's, over a "
                f"loud noise floor) or a linear (not log) mel; undo the normalisation, or take its ln, and store the "
                f"natural-log mel clamped at {floor:.2f}")  # fmt: skip
    if outside and fault is None:
        return _below_floor_or_above_ceiling(lo, q1, hi, stats.width, floor, ceiling, fix)
    if stats.width > LN_SPREAD[1]:  # inside the ranges, but no natural-log mel spreads so far
        return _power_spread(stats.width, hi, floor, ceiling)
    band_floor = None if at_floor else _band_floor(mel)
    if band_floor is not None and band_floor > floor + ABOVE_FLOOR and hi - band_floor < COMPRESSED_SPAN * (
            ceiling - floor):  # fmt: skip
        return (f"values pile up at a floor of their own in each band (about {band_floor:.2f}), not at ln(clip) = "
                f"{floor:.2f}, and peak at {hi:.2f}: looks like log10 (ln / 2.303) of magnitudes clamped before the "
                f"filterbank (ESPnet's LogMelFbank, log10 of sqrt(clamp(power, 1e-10))), or a scaled natural-log mel; "
                f"set {keys.set_scale('log10')} if it is log10")  # fmt: skip
    if q1 > COMPRESSED_Q1 and hi < COMPRESSED_PEAK * ceiling:
        return (f"values only from {q1:.2f} to {hi:.2f} (1st percentile to max): natural-log mels of speech reach "
                f"toward {floor:.2f}; looks like log10, a scaled mel, or a normalised one (a corpus mean and standard "
                f"deviation, as Matcha-TTS's, or a fixed range, as Coqui TTS's [-4, 4]); {fix}")  # fmt: skip
    return _layout(mel)


def _clipped_ceiling(lo: float, hi: float, at_floor: bool, floor: float) -> str:
    """The reason for values piling up at their maximum `hi`: clipped there, as a normalisation clipped to its
    range is (a natural-log mel's loudest values never repeat: measured, none of the espeak-ng rows of
    benchmarks/toolkit_mels.py had two equal maxima)."""
    both = f" and at their minimum {lo:.2f}" if at_floor else ""
    coqui = ""
    if abs(hi - round(hi)) < 1e-3 and round(hi) > 0 and lo >= -hi - 1e-3:  # [-m, m] or [0, m]: m a whole number
        m = round(hi)
        coqui = (
            f"; for Coqui TTS's default (symmetric_norm, max_norm={m}, min_level_db=-100, ref_level_db=20) the "
            f"natural-log mel is ((x + {m}) / {2 * m} * 100 - 80) * ln(10) / 20, its clipped values lost"
        )
    return (f"values pile up at their maximum {hi:.2f}{both}: clipped there, as a mel scaled into a fixed range "
            f"and clipped to it is (Coqui TTS's and Tacotron's [-4, 4] with clip_norm), where a natural-log mel's "
            f"loudest values never repeat; undo the normalisation and store the natural-log mel of magnitudes clamped "
            f"at {floor:.2f}{coqui}")  # fmt: skip


def _decade(value: float) -> int | None:
    """k where `value` is log10(10^k) (a whole number from -12 to -3, to 1e-3): a log10 mel's clamped floor."""
    k = round(value)
    return k if -12 <= k <= -3 and abs(value - k) < 1e-3 else None


def _power_spread(width: float, hi: float, floor: float, ceiling: float) -> str:
    """The reason for values that spread wider than any natural-log mel (LN_SPREAD) but less than decibels
    (DB_SPREAD), inside the natural-log range: the log of a power mel (its spread doubled) whose level is raised
    (a guard added before the log, as in ln(mel + 1e-6), or a filterbank without area normalisation)."""
    loud = f", peaking {hi - ceiling:+.2f} above the {ceiling:.2f} of full scale" if hi > ceiling + LOUD_MARGIN else ""
    return (f"values spread {width:.1f} (1st to 99th percentile){loud}, where natural-log mels spread "
            f"{LN_SPREAD[0]:g}-{LN_SPREAD[1]:g} and decibels {DB_SPREAD:g} or more: looks like the log of a power mel "
            f"(2 x ln: power=2, torchaudio's and librosa's default; with torchaudio's default norm=None filterbank "
            f"louder still); make the mel with power=1 (and norm='slaney', mel_scale='slaney') and store ln(mel) "
            f"clamped at {floor:.2f}")  # fmt: skip


def _band_floor(mel: np.ndarray) -> float | None:
    """The level of a clamped floor that lies per band (magnitudes clamped before the filterbank: each band's
    floor is the clip times its weights' sum, one constant per band): the median of the band minima where the
    values pile up at their band's minimum (FLOOR_MASS) and those minima lie within BAND_FLOOR_RANGE; else None."""
    if mel.ndim != 2 or mel.shape[1] < 2:
        return None
    minima = mel.min(axis=1)
    at_minimum = mel <= minima[:, None] + 1e-4
    counts = at_minimum.sum(axis=1)
    if int(counts.sum()) < max(FLOOR_MASS * mel.size, FLOOR_MIN_VALUES):
        return None
    piled = minima[counts >= 2]
    if piled.size < mel.shape[0] // 2 or float(piled.max() - piled.min()) > BAND_FLOOR_RANGE:
        return None
    return float(np.median(piled))


def _linear(hi: float) -> str:
    """The reason for a mel of magnitudes (not their log) peaking at `hi`."""
    return f"no negative values (0 .. {hi:.3g}): looks like a linear (not log) mel; take its ln, clamped at 1e-5"


@dataclass(frozen=True)
class LevelFault:
    """A natural-log mel whose level is off: `offset` from the model's (exact with a clamped floor, else an
    estimate), `reason` in words, `refused`: so far off that no audio of the front end gives the values."""

    offset: float
    reason: str
    refused: bool


def level_fault(mel: np.ndarray, floor: float, ceiling: float, stats: SampleStats | None = None,
                scale: str = "ln") -> LevelFault | None:  # fmt: skip
    """How `mel` [n_mels, n_frames] is off in level when it spreads like a natural-log mel (LN_SPREAD) but peaks
    over LOUD_MARGIN above the full-scale `ceiling` (too loud) or reaches over BELOW_FLOOR below ln(clip) `floor`
    at its 1st percentile (too quiet); else None. The offset is exact where the values pile up at a clamped floor
    (its distance from ln(clip)), else how far the peak passes full scale (too loud: at least that) or the 1st
    percentile lies below ln(clip) (too quiet: about that). Refused beyond LEVEL_REFUSED (see there). A row too loud
    names its likelier cause where the values tell one (_loud_cause; `scale`: input.mel_scale it was read with)."""
    stats = stats or SampleStats.of(mel)
    if not LN_SPREAD[0] <= stats.width <= LN_SPREAD[1]:
        return None
    lo, hi = float(mel.min()), float(mel.max())
    clamped = _piles_up_at(_sample(mel), lo) and hi - lo > 1e-3
    floor_at = f"its clamped floor at {lo:.2f}, {lo - floor:+.2f} from ln(clip) = {floor:.2f}" if clamped else ""
    # past both ends at once (shifted back up, it would pass full scale): before too loud, which such a row is too
    if stats.q1 < floor - BELOW_FLOOR and not clamped and hi - stats.q1 > ceiling - floor + BELOW_FLOOR:
        offset = stats.q1 - floor
        reason = (f"values reach from {stats.q1:.2f} (1st percentile) to {hi:.2f}, {hi - stats.q1:.1f} apart, "
                  f"further than a natural-log mel of this front end reaches (ln(clip) = {floor:.2f} to the "
                  f"{ceiling:.2f} of full scale, and a predicted mel's {BELOW_FLOOR:g} of undershoot): looks like "
                  f"the log of a power mel (2 x ln) of a noisy recording, or a natural-log mel whose silences "
                  f"undershoot ln(clip) by more than {BELOW_FLOOR:g}; store ln(mel) of magnitudes clamped at "
                  f"{floor:.2f}")  # fmt: skip
        return LevelFault(offset, reason, -offset > LEVEL_REFUSED + BELOW_FLOOR)
    if hi > ceiling + (LOUD_MARGIN_DB if scale == "db" else LOUD_MARGIN):
        offset = max(lo - floor, hi - ceiling) if clamped else hi - ceiling
        seen = f"peaks at {hi:.2f}, {hi - ceiling:+.2f} above the {ceiling:.2f} a full-scale signal makes"
        how, about, refused = "too loud", "" if clamped else "at least ", offset > LEVEL_REFUSED
        at_clip = abs(lo - floor) < 1e-3 and int(np.count_nonzero(mel <= floor + 1e-4)) >= FLOOR_MIN_VALUES
        cause = _loud_cause(at_clip, floor, clamped, stats, scale)
        if cause is not None:
            where = floor_at if at_clip else ""  # the floor matters to the filterbank's cause alone
            reason = (f"too loud: {seen}, where speech through this front end stays below it (full-scale tones pass "
                      f"it by 0.21 at most); {'; '.join(x for x in (where, cause) if x)}")  # fmt: skip
            return LevelFault(offset, reason, refused)
    elif stats.q1 < floor - BELOW_FLOOR:
        offset = lo - floor if clamped else stats.q1 - floor
        seen = f"reaches {stats.q1:.2f} (1st percentile), {stats.q1 - floor:+.2f} below ln(clip) = {floor:.2f}"
        how, about = "too quiet", "" if clamped else "about "
        refused = -offset > LEVEL_REFUSED + (0.0 if clamped else BELOW_FLOOR)
        if clamped:
            seen, floor_at = floor_at, ""
    else:
        return None
    causes = f"an offset added, or a gain of x{math.exp(offset):.3g}"
    if offset > 0:
        causes += ", or a louder filterbank (norm=None) or STFT than the front end's"
    if offset < 0:
        causes += f", or clamped at {math.exp(lo):.2g} instead of {math.exp(floor):.0e}"
    reason = (f"{how}: the mel spreads like a natural-log mel ({stats.width:.1f} from 1st to 99th percentile) but "
              f"{'; '.join(x for x in (seen, floor_at) if x)}: a natural-log mel shifted by {about}{offset:+.2f} "
              f"({causes}); store ln(mel) clamped at {floor:.2f}")  # fmt: skip
    return LevelFault(offset, reason, refused)


def _loud_cause(at_clip: bool, floor: float, clamped: bool, stats: SampleStats, scale: str) -> str | None:
    """The likelier cause of a mel too loud than an offset added to a natural-log mel, where its values tell one:
    read with input.mel_scale=db (a power mel's dB), silence at ln(clip) itself (`at_clip`: FLOOR_MIN_VALUES or
    more values there, so no offset moved it: a louder filterbank or STFT), or values squeezed between a raised
    floor and a peak past full scale (a mel mapped into a fixed range); else None. The reason ends with what to
    store."""
    if scale == "db":
        return ("looks like the dB of a power mel (librosa's power_to_db of melspectrogram(power=2), torchaudio's "
                "AmplitudeToDB(stype='power') of MelSpectrogram(power=2)): the filterbank applied to the power "
                "spectrum, whose dB run about 1.6 (natural-log units) above those of a magnitude mel, which "
                "input.mel_scale=db reads; make the mel with power=1 and store amplitude_to_db of it (or its ln, "
                f"clamped at {floor:.2f})")  # fmt: skip
    if at_clip:
        return ("its silence sits at ln(clip) itself, so no offset moved it: the filterbank or the STFT is louder "
                "than the front end's: looks like a filterbank without area normalisation (norm=None, torchaudio's "
                "MelSpectrogram default: HTK triangles of height 1, louder with every band), a power mel (power=2), "
                "or an STFT scaled up; make the mel with power=1, norm='slaney' and mel_scale='slaney', and store "
                f"ln(mel) clamped at {floor:.2f}")  # fmt: skip
    if not clamped and stats.q1 > COMPRESSED_Q1 and stats.width < SPAN_OF_SPEECH:
        return (f"its values spread only {stats.width:.1f} (1st to 99th percentile) from a 1st percentile of "
                f"{stats.q1:.2f}: squeezed and lifted, as a mel mapped into a fixed range is (Coqui TTS's [-4, 4]: "
                f"0.69 x ln(mel) + 2.4 over a noise floor, clipped at 4 where louder), or one made with a filterbank "
                f"without area normalisation (norm=None, torchaudio's default), whose noise floor rises band by band; "
                f"undo the mapping, or make the mel with norm='slaney', and store the natural-log mel clamped at "
                f"{floor:.2f}")  # fmt: skip
    return None


def _gsv_norm_of(value: float) -> float:
    """GPT-SoVITS's norm_spec of a natural-log value (not clipped: louder audio than spec_max maps above 1)."""
    return (value - GSV_SPEC_MIN) / (GSV_SPEC_MAX - GSV_SPEC_MIN) * 2 - 1


def _decibels(lo: float, hi: float, width: float, floor: float, ceiling: float, keys: Keys) -> str:
    """The reason for values that spread tens (DB_SPREAD): decibels, whatever their reference."""
    reference = ""
    if lo >= 0.0 or hi > (ceiling + ABOVE_CEILING) * 20 / LN10:  # above what full scale gives in dB: another ref
        reference = (f" relative to another reference (its floor at {lo:.0f} dB, where ln(clip) is "
                     f"{floor * 20 / LN10:.0f} dB: shift it there)")  # fmt: skip
    return (f"values from {lo:.1f} to {hi:.1f} spread {width:.0f} (1st to 99th percentile), where natural-log mels "
            f"spread {LN_SPREAD[0]:g}-{LN_SPREAD[1]:g}: looks like decibels (20*log10){reference}; set "
            f"{keys.set_scale('db')}")  # fmt: skip


def looks_compressed(mel: np.ndarray, stats: SampleStats | None = None, keys: Keys = JOB_KEYS,
                     ceiling: float | None = None) -> str | None:  # fmt: skip
    """Why `mel` [n_mels, n_frames] may be log10 or a scaled-down natural-log mel though it never reaches a floor
    (see SPAN_OF_SPEECH), or None; rows under MIN_FRAMES_FOR_SPAN frames are not judged. stats: the mel's
    SampleStats where the caller has them; keys: how the reason names input.mel_scale; ceiling: the full-scale
    ceiling, where known: a row whose 99th percentile passes COMPRESSED_PEAK of it is named as normalised, not
    log10 (log10 peaks under 0.43 of it)."""
    if mel.ndim != 2 or mel.shape[1] < MIN_FRAMES_FOR_SPAN:
        return None
    q1, _, q75, q99 = (stats or SampleStats.of(mel)).spread
    span = q99 - q1
    if span <= 0 or q99 < QUIET_TOP:
        return None
    top = q99 - q75  # speech's loudest values: a scale narrows them, a noise floor does not
    if span < NARROW_SPAN:
        seen = (f"values span only {span:.2f} (1st to 99th percentile); natural-log mels of speech span about "
                f"{NARROW_SPAN:g} or more even over a noise floor as loud as the speech")  # fmt: skip
    elif span >= SPAN_OF_SPEECH or top / span >= TOP_QUARTER_SHARE or top >= TOP_QUARTER_WIDTH:
        return None
    else:
        seen = (f"values span only {span:.2f} (1st to 99th percentile), and the loudest quarter is squeezed with "
                f"the rest; natural-log mels of speech span {SPAN_OF_SPEECH:g} or more")  # fmt: skip
    if ceiling is not None and q99 > COMPRESSED_PEAK * ceiling:
        return (f"{seen}, and they reach {q99:.2f} (99th percentile), higher than log10 reaches: looks like a "
                f"normalised mel (a corpus mean and standard deviation, as Matcha-TTS's (ln(mel) + 5.54) / 2.12, or "
                f"a fixed range, as Coqui TTS's [-4, 4]) or a natural-log mel scaled down and shifted; undo the "
                f"normalisation and store the natural-log mel (vocoded, marked suspect: the values alone cannot be "
                f"sure)")  # fmt: skip
    return (
        f"{seen}: looks like log10 (ln / 2.303), a natural-log mel scaled down, or one normalised with a corpus "
        f"mean and standard deviation (set "
        f"{keys.set_scale('log10')} if it is log10; vocoded, marked suspect: the values alone cannot be sure)"
    )


def raised_floor(mel: np.ndarray, floor: float, ceiling: float | None = None) -> str | None:
    """Why `mel` [n_mels, n_frames], whose values pile up at a clamped floor above ln(clip) (RAISED_FLOOR), may not
    be the model's natural-log mel, or None; a floor a whole number of 10 dB below the maximum (librosa's
    power_to_db / amplitude_to_db top_db, 80 by default) is not judged. (looks_like refuses such a floor outright
    where the span is compressed too.) With the full-scale `ceiling`: a peak above it says shifted, not scaled
    down (a smaller factor would peak lower still)."""
    values, lo, hi = _sample(mel), float(mel.min()), float(mel.max())
    if lo <= floor + RAISED_FLOOR or hi - lo <= 1e-3 or _top_db_below(hi - lo):
        return None
    if not _piles_up_at(values, lo):
        return None
    head = f"values pile up at {lo:.2f}, not at ln(clip) = {floor:.2f}"
    tail = f"store ln(mel) clamped at {floor:.2f} (vocoded, marked suspect)"
    if ceiling is not None and hi > ceiling:
        return (f"{head}, and peak at {hi:.2f}, above the {ceiling:.2f} a full-scale signal makes: too loud, a "
                f"natural-log mel shifted by {lo - floor:+.2f} (an offset added, or a gain of "
                f"x{math.exp(lo - floor):.3g}); {tail}")  # fmt: skip
    ratio = _scale_estimate(lo, floor)
    if ratio is None:  # a floor at about 0 or above: no factor scales ln(clip) there
        return (f"{head}: {NORMALISED}, a natural-log mel shifted by {lo - floor:+.2f}, or clamped at "
                f"{math.exp(lo):.2g} instead of {math.exp(floor):.0e}; {tail}")  # fmt: skip
    return (f"{head}: a natural-log mel scaled by {ratio:.2f}, shifted by {lo - floor:+.2f}, or clamped at "
            f"{math.exp(lo):.2g} instead of {math.exp(floor):.0e}; {tail}")  # fmt: skip


def _scale_estimate(lo: float, floor: float) -> float | None:
    """The factor that would scale ln(clip) `floor` to a clamped floor at `lo` (a scaled natural-log mel's), or
    None where no factor would: 0 or below, or one that shows as 0.00 (a floor at or about 0, a normalised mel's)."""
    ratio = lo / floor
    return ratio if round(ratio, 2) > 0 else None


def _piles_up_at(values: np.ndarray, lo: float) -> bool:
    """Whether the (sampled) values pile up at their minimum `lo`: a clamped floor (FLOOR_MASS)."""
    return int(np.count_nonzero(values <= lo + 1e-4)) >= max(FLOOR_MASS * values.size, FLOOR_MIN_VALUES)


def _top_db_below(span: float) -> bool:
    """Whether a floor `span` natural-log units below the maximum is a dB clamp's: a whole number of 10 dB."""
    decibels = span * 20 / LN10
    return abs(decibels - round(decibels, -1)) < 1e-3 and decibels >= 10 - 1e-3


def likely_cause(mel: np.ndarray, floor: float, ceiling: float) -> str | None:
    """The likeliest reason a row's audio does not match its mel [n_mels, n_frames] (for a suspect row), or None.

    Another convention (as looks_like), else a level that is off (level_fault: too loud or too quiet), else a
    mel louder than full scale (it clips), else a floor shifted away from ln(clip) (raised_floor).
    """
    stats = SampleStats.of(mel)
    reason = looks_like(mel, floor, ceiling, stats)
    if reason is not None:
        return reason
    fault = level_fault(mel, floor, ceiling, stats)
    if fault is not None:
        return fault.reason
    hi = float(mel.max())
    if hi > ceiling:
        return f"the mel peaks at {hi:.2f}, above the {ceiling:.2f} a full-scale signal makes: too loud, it clips"
    return raised_floor(mel, floor, ceiling)


def _below_floor_or_above_ceiling(lo: float, q1: float, hi: float, width: float, floor: float, ceiling: float,
                                  fix: str) -> str:  # fmt: skip
    """The reason for values below ln(clip) or far above full scale that spread neither as a natural-log mel
    (a level fault) nor as decibels."""
    if abs(lo / floor - 2.0) < 0.25 and width > LN_SPREAD[1]:
        guess = "the log of a power mel (2 x ln)"
    elif hi - q1 > ceiling - floor + BELOW_FLOOR:  # a too-quiet natural-log mel would peak above full scale
        return (f"values reach from {q1:.2f} (1st percentile) to {hi:.2f}, {hi - q1:.1f} apart, where a natural-log "
                f"mel of this front end reaches from ln(clip) = {floor:.2f} (a predicted one {BELOW_FLOOR:g} below "
                f"it) to the {ceiling:.2f} of full scale: looks like the log of a power mel (2 x ln: a recording's "
                f"noise floor doubled below the model's floor) or another scale; {fix}")  # fmt: skip
    elif hi > ceiling + ABOVE_CEILING:
        return (f"values up to {hi:.1f}, far above the {ceiling:.2f} a full-scale signal makes, spread {width:.1f} "
                f"(1st to 99th percentile), where natural-log mels spread {LN_SPREAD[0]:g}-{LN_SPREAD[1]:g}: looks "
                f"like another scale or convention; {fix}")  # fmt: skip
    else:
        guess = "a natural-log mel clamped below 1e-5"
    return (f"values down to {q1:.2f} (1st percentile), below the natural-log floor {floor:.2f}: "
            f"looks like {guess}; {fix}")  # fmt: skip


def _layout(mel: np.ndarray) -> str | None:
    """A reason when the values read as [n_frames, n_mels] (flattened, then shaped [n_mels, n_frames]) are much
    smoother than as [n_mels, n_frames]: a [T, n_mels] array was stored with n_frames=T."""
    n_mels, frames = mel.shape
    if frames < MIN_FRAMES_FOR_LAYOUT or n_mels < MIN_FRAMES_FOR_LAYOUT or frames == n_mels:
        return None
    start = max((frames - LAYOUT_FRAMES) // 2, 0)
    stop = min(start + LAYOUT_FRAMES, frames)
    given = mel[:, start:stop]
    across_bands, across_frames = (
        float(np.abs(np.diff(given, axis=0)).mean()),
        float(np.abs(np.diff(given, axis=1)).mean()),
    )
    if across_frames < STATIONARY * across_bands:
        return None  # frames all alike (unclamped digital silence): no reading is smoother for its layout
    as_given = across_bands + across_frames  # _total_variation; the same frames' worth of values, read both ways
    transposed = _total_variation(mel.reshape(frames, n_mels)[start:stop].T)
    if as_given > 0 and transposed / as_given < SMOOTHER_AS_TRANSPOSED:
        return (f"the values are {as_given / max(transposed, 1e-9):.1f}x smoother read as [n_frames, n_mels]: "
                "looks like a [T, n_mels] array flattened with n_frames=T; store mel.T, C-ordered")  # fmt: skip
    return None


def _total_variation(mel: np.ndarray) -> float:
    """Mean |difference| between neighbouring bands plus between neighbouring frames."""
    return float(np.abs(np.diff(mel, axis=0)).mean() + np.abs(np.diff(mel, axis=1)).mean())


def _sample(mel: np.ndarray) -> np.ndarray:
    flat = mel.reshape(-1)
    step = max(flat.size // MAX_STAT_VALUES, 1)
    return flat[::step]


def _whole(value, column: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowError(f"{column} is {value!r}, not a number") from None
    if not number.is_integer():
        raise RowError(f"{column} is {value!r}, not a whole number")
    return int(number)


def _either(values: set[int]) -> str:
    return " or ".join(str(v) for v in sorted(values))
