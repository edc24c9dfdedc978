"""The Python API: vocode mels you already hold, through the job's chunk-and-pack engine and row checks.

    from batchvoc import Vocoder

    vocoder = Vocoder.from_preset("hifigan_v1_universal", checkpoint="pretrained", backend="eager")
    audio = vocoder([mel_a, mel_b])        # mels [n_mels, T_i] (numpy or torch) -> [float32 [T_i * hop], ...]
    vocoder.sample_rate, vocoder.hop_length, vocoder.n_mels
    pieces = vocoder.stream(chunks)        # one utterance's mel in pieces -> its audio in pieces (Vocoder.stream)

The mels must be what the model was trained on: the natural-log mel of the preset's own front end
(`batchvoc.models.mel.log_mel(audio, preset.front_end)` makes one from audio).
"""

from __future__ import annotations

import functools
import logging
import numbers
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import torch

from batchvoc.chunking import ChunkPlan, fitted_plan
from batchvoc.engines import Engine
from batchvoc.errors import API_KEYS, ConfigError, RowError
from batchvoc.manifest.conventions import MelChecks, to_natural_log
from batchvoc.manifest.rows import finite_float32, one_line, require_floats, squeezed_shape
from batchvoc.manifest.short_rows import POOLED_FRAMES, pooled_warnings
from batchvoc.models.presets import Preset
from batchvoc.runtime import EngineOptions, build_runtime, resolve_device
from batchvoc.stream import vocode_audio

log = logging.getLogger(__name__)

MelLike = np.ndarray | torch.Tensor

JUDGED_FRAMES = POOLED_FRAMES  # a stream's conventions are judged on its first frames, as short rows pooled

# from_preset's keyword for each job key it stands for: its errors name what the caller set
KEYWORDS = {
    "model.preset": "preset",
    "model.checkpoint": "checkpoint",
    "model.hparams": "hparams",
    "engine.backend": "backend",
    "engine.precision": "precision",
    "engine.device": "device",
    "engine.batch": "batch",
    "engine.window": "window",
    "engine.cache_dir": "cache_dir",
    "engine.options": "options",
    "input.mel_scale": "mel_scale",
    "check.mel_convention": "mel_convention",
}
_JOB_KEY = re.compile(r"\b(" + "|".join(re.escape(k) for k in KEYWORDS) + r")(?:\.(\w+))?\b(=(\w+))?")


def _keyword(match: re.Match) -> str:
    """A job key in a message (`engine.backend=auto`, `model.checkpoint=PATH`, `engine.options.mode`) as the
    keyword that sets it (`backend="auto"`, `checkpoint=PATH`, `options["mode"]`)."""
    name = KEYWORDS[match.group(1)] + (f'["{match.group(2)}"]' if match.group(2) else "")
    value = match.group(4)
    if value is None:
        return name
    return f"{name}={value}" if value.isupper() or value.isdigit() else f'{name}="{value}"'


def in_keywords(err: ConfigError) -> ConfigError:
    """`err` as the Python API's caller sees it: its text names from_preset's keywords where it named job keys
    (`key` stays the job key)."""
    if err.shown is not None or not _JOB_KEY.match(err.key):
        return err
    return ConfigError(err.key, _JOB_KEY.sub(_keyword, err.message), shown=_JOB_KEY.sub(_keyword, err.key))


def _keyword_errors(build):
    """from_preset with its ConfigErrors in the caller's words (in_keywords)."""

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        try:
            return build(*args, **kwargs)
        except ConfigError as err:
            raise in_keywords(err) from None

    return wrapper


@dataclass(frozen=True)
class Result:
    """One item's outcome: `audio` float32 [T * hop] in [-1, 1] when it could be vocoded, else `error` says why.
    `warning`: vocoded, but the mel may be in another convention (what makes a job's row `suspect` before its
    round trip: check.mel_convention=warn's findings, or a mel that only may be one)."""

    audio: np.ndarray | None
    error: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_mel(mel: Any, n_mels: int, checks: MelChecks | None = None) -> tuple[np.ndarray, str | None]:
    """(the mel as C-contiguous float32 [n_mels, T] natural-log mel, a warning or None), or a RowError with a
    one-line reason.

    Same checks as a job's rows: a float array with the model's mel bands on axis 0 and frames on axis 1 once
    size-1 axes are dropped as a job's `.npy` mels are (a TTS model's [1, n_mels, T]; [1, n_mels, 1] is one
    frame: rows.squeezed_shape), at least one frame,
    no NaN or Inf, no value beyond float32's range (a [T, n_mels] array is named as such); then `checks`
    (input.mel_scale's conversion and check.mel_convention's log10 / dB / normalised / transposed checks,
    batchvoc/manifest/conventions.py).
    """
    not_array = not_an_array(mel, n_mels)
    if not_array:
        raise RowError(not_array)
    if isinstance(mel, torch.Tensor):
        require_floats(mel, "mel")  # the job's check: an int, bool ... tensor is refused, not cast
        mel = mel.detach().cpu()
        # float64 kept as it is, so that a value beyond float32's range is named, not cast to Inf
        mel = (mel if mel.dtype == torch.float64 else mel.to(torch.float32)).numpy()
    try:
        array = np.asarray(mel)
    except (ValueError, TypeError) as err:  # ragged nested lists, ...
        raise RowError(f"mel is not an array: {one_line(err)}") from None
    require_floats(array, "mel")  # as a job refuses a mel_path .npy of int16: floats only, never cast
    shape = list(array.shape)
    array = array.reshape(squeezed_shape(array.shape))  # a TTS model's [1, n_mels, T], as a job's .npy reads
    if array.ndim != 2:
        raise RowError(f"mel has shape {shape}, expected [n_mels={n_mels}, n_frames] (size-1 axes aside)")
    if array.shape[0] != n_mels:
        swapped = " (looks like [n_frames, n_mels]: transpose it)" if array.shape[1] == n_mels else ""
        raise RowError(f"mel has {array.shape[0]} mel bands on axis 0, the model takes {n_mels}{swapped}")
    array = finite_float32(array)  # the job's check: 0 frames, NaN or Inf, beyond float32's range
    if checks is None:
        return array, None
    return checks.read(array)  # error mode raises RowError


def not_an_array(mel: Any, n_mels: int) -> str | None:
    """Why `mel` (one item of a call, or a stream's chunk) is no array at all, or None where it may be one (an
    array, a tensor, nested sequences or anything numpy takes as an array: the other checks judge it).

    A file name (str, bytes, os.PathLike) is named as one with how to pass its mel; any other object that is not a
    sequence (a dict, a number) by its type: numpy would make a 0-d array of it and the reason would
    name its dtype (`mel holds <U5`)."""
    if mel is None:
        return "mel is null"
    if isinstance(mel, (str, bytes, PathLike)):
        path = str(os.fsdecode(mel))  # str: numpy's np.str_ reprs as np.str_(...)
        return (f"mel is a file name ({path!r}), not a mel: pass np.load({path!r}) (a job reads .npy mels named in "
                f"a manifest's mel_path column: python -m batchvoc.manifest npy)")  # fmt: skip
    if isinstance(mel, (np.ndarray, torch.Tensor, Sequence)) or hasattr(mel, "__array__"):
        return None
    return f"mel is a {type(mel).__name__}, not an array [n_mels={n_mels}, n_frames]"


def mel_items(mels: Any, n_mels: int) -> list:
    """The mels of one call as a list: a sequence (list, tuple, generator) of mels, or a batch array / tensor
    [B, n_mels, T] (its B mels, as vocos's and BigVGAN's forward take them).

    Raises ValueError for one mel given bare (a 2-D array or tensor, or nested lists of numbers: it would be read
    as n_mels mels of one row each) or an array of another rank, TypeError for a str or path (a file name, not a
    mel: np.load it first) or a non-iterable."""
    if isinstance(mels, (str, bytes, PathLike)):
        name = str(os.fsdecode(mels))
        raise TypeError(f"mels is a file name ({name!r}), not mels: pass [np.load({name!r})] (a job reads .npy mels "
                        f"named in a manifest's mel_path column: python -m batchvoc.manifest npy)")  # fmt: skip
    if isinstance(mels, (np.ndarray, torch.Tensor)):
        if mels.ndim == 3:
            return list(mels)
        shape = list(mels.shape)
        if mels.ndim == 2:
            raise ValueError(f"mels is one mel {shape} given bare; pass a list of mels, vocoder([mel]), or a batch "
                             f"[B, n_mels={n_mels}, T]")  # fmt: skip
        raise ValueError(f"mels has shape {shape}: pass a list of mels [n_mels={n_mels}, T_i] or a batch [B, "
                         f"n_mels={n_mels}, T]")  # fmt: skip
    try:
        items = list(mels)
    except TypeError:
        raise TypeError(f"mels is of type {type(mels).__name__}: pass a list of mels [n_mels={n_mels}, T_i]") from None
    if items and all(isinstance(row, (list, tuple)) for row in items) and _numbers(items[0]):
        raise ValueError(f"mels is one mel as nested lists ({len(items)} rows of {len(items[0])} numbers) given bare; "
                         "pass a list of mels, vocoder([mel])")  # fmt: skip
    return items


def _no_frames(chunk: Any, n_mels: int) -> bool:
    """Whether a stream's chunk is [n_mels, 0]: no frames arrived (skipped, not refused as a call's mel is)."""
    shape = getattr(chunk, "shape", None)
    return shape is not None and len(shape) == 2 and shape[0] == n_mels and shape[1] == 0


def _numbers(row: Sequence) -> bool:
    """Whether a nested list's row holds numbers (one mel's row), not arrays (a list of mels)."""
    return len(row) > 0 and all(isinstance(value, numbers.Real) and not isinstance(value, bool) for value in row)


class Vocoder:
    """A vocoder engine built once, fed through chunk-and-pack: any number of mels of any lengths per call.

    Build it with `Vocoder.from_preset(...)`. `window`: frames a row keeps; `context`: frames of the model's
    receptive field run on each side of them (and the lag of `stream`'s audio behind its mel); `batch`: rows per
    forward; `sample_rate` (Hz), `hop_length` (samples per frame), `n_mels` (bands on each mel's axis 0).

    Threads: two threads calling one eager CPU vocoder (hifigan_v1, 3 calls each, 150-frame mels) got the audio
    of calls made one after another, bit for bit; on a GPU that was not measured (the engine and its CUDA work
    are shared between the calls): there give each thread its own Vocoder, or hold a lock around the calls.
    """

    def __init__(self, engine: Engine, preset: Preset, window: int, context: int, batch: int,
                 checks: MelChecks | None = None):  # fmt: skip
        self.engine, self.preset = engine, preset
        self.window, self.context, self.batch = window, context, batch
        self.checks = checks or MelChecks.for_preset(preset, keys=API_KEYS)

    @classmethod
    @_keyword_errors
    def from_preset(
        cls,
        preset: str,
        checkpoint: str | None = "pretrained",
        backend: str = "auto",
        precision: str | None = None,
        device: str | torch.device | None = None,
        batch: int | None = None,
        window: int | None = None,
        hparams: dict[str, Any] | None = None,
        cache_dir: str | None = None,
        mel_scale: str = "ln",
        mel_convention: str = "error",
        options: dict[str, Any] | None = None,
    ) -> Vocoder:
        """Load `preset`'s model with its weights and build its engine for one fixed shape.

        preset: a preset name (`gsv_v4`, `hifigan_v1_universal`, `bigvgan_v2_24khz_100band_256x`, ...).
        checkpoint: the upstream weights file or folder, `"pretrained"` (hifigan_v1_universal only) or
            `"random"` (benchmarks only).
        backend: `auto` | `tensorrt` | `aoti` | `inductor` | `eager` (as `engine.backend`).
        precision: `fp32` | `fp16` | `bf16`; None: fp16 on a CUDA device, fp32 elsewhere.
        device: `"cpu"`, `"cuda"`, `"cuda:1"`, ...; None or `"auto"`: the CUDA GPU if there is one, else the CPU.
        batch, window: rows per forward and frames per row (as `engine.batch` / `engine.window`); None: the
            device's defaults, as a job's (batchvoc/device_defaults.py: batch 16 and W + 2 * context = 10 s of frames
            on a GPU, batch 1 and 512 frames on a CPU, where batching only computes silence).
        hparams: overrides of the preset's hyper-parameters (as `model.hparams`).
        mel_scale: what the mels are (as `input.mel_scale`): `ln` (the model's own), `log10`, `db`, `gsv_norm`;
            converted to ln before vocoding.
        mel_convention: `error` (as `check.mel_convention`): a mel that looks like another convention (log10,
            dB, normalised, transposed) is refused; `warn` / `off` vocode it anyway. A refusal or warning names
            these keywords (`mel_scale="db"`), not the job's keys.
        options: engine tunables (as `engine.options`; batchvoc.runtime.TUNABLES lists them per backend).

        Built by the job's own runtime builder (batchvoc.runtime.build_runtime), so the engine, its chunking
        plan and its compiled-package cache are the job's.

        Raises batchvoc.errors.ConfigError naming the keyword (`checkpoint: ... does not exist`; its `key` is the
        job key, `model.checkpoint`) for an unknown preset, backend, precision, device, engine option, mel scale or
        convention mode, a missing checkpoint, or TensorRT asked for but not installed.
        """
        MelChecks(1, scale=mel_scale, mode=mel_convention)  # ConfigError naming the key before any loading
        where = resolve_device(str(device or "auto"))
        if precision is None:
            precision = "fp16" if where.type == "cuda" else "fp32"
        engine = EngineOptions(backend=backend, precision=precision, batch=batch, chunk_frames=window,
                               device=str(where), cache_dir=cache_dir, tunables=dict(options or {}))  # fmt: skip
        runtime = build_runtime(preset, checkpoint, engine, hparams, keys=API_KEYS)  # log lines name keywords
        plan = runtime.plan
        checks = MelChecks.for_preset(runtime.preset, mel_scale, mel_convention, API_KEYS)  # hints name keywords
        return cls(runtime.engine, runtime.preset, plan.chunk_frames, plan.context, plan.batch, checks)

    @property
    def sample_rate(self) -> int:
        """Output audio samples per second."""
        return self.preset.sample_rate

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame: a mel of T frames gives T * hop_length samples."""
        return self.preset.hop_length

    @property
    def n_mels(self) -> int:
        """Mel bands the model takes (axis 0 of every mel)."""
        return self.preset.n_mels

    def __call__(self, mels: Sequence[MelLike]) -> list[np.ndarray]:
        """Audio for each mel: mels [n_mels, T_i] (numpy or torch, any float dtype; a list, or a batch [B, n_mels,
        T]) -> float32 [T_i * hop] each, in order, at `sample_rate`, not clipped (a well-made mel stays within
        [-1, 1]).

        Raises ValueError naming the item (its index) and the reason when a mel fails the checks; nothing is
        vocoded then. Use `vocode_each` to get the other items' audio and a reason per bad item instead. One mel
        given bare (not in a list) raises ValueError saying so (mel_items).
        """
        checked, warnings = [], []
        for index, mel in enumerate(mel_items(mels, self.n_mels)):
            try:
                array, warning = check_mel(mel, self.n_mels, self.checks)
            except RowError as err:
                raise ValueError(f"mel #{index}: {err}") from None
            checked.append(array)
            warnings.append(warning)
        for index, warning in enumerate(pooled_warnings(self.checks, checked, warnings)):
            if warning:
                log.warning("mel #%d: %s", index, warning)
        return [audio for _, audio in self._run(list(enumerate(checked)))]

    def vocode_each(self, mels: Sequence[MelLike | None]) -> list[Result]:
        """A Result per mel, in order: `.audio` float32 [T_i * hop] at `sample_rate` (and `.warning` where the mel
        may be in another convention), or `.error`, the reason it was refused, with `.audio` None (None items are
        refused too). Takes what a call takes (a list of mels [n_mels, T_i], a batch [B, n_mels, T]); raises only
        for what is not mels at all (a bare mel, a file name: mel_items)."""
        mels = mel_items(mels, self.n_mels)
        results: list[Result | None] = [None] * len(mels)
        good, warnings = [], {}
        for index, mel in enumerate(mels):
            try:
                array, warnings[index] = check_mel(mel, self.n_mels, self.checks)
                good.append((index, array))
            except RowError as err:
                results[index] = Result(None, str(err))
        pooled = pooled_warnings(self.checks, [array for _, array in good], [warnings[index] for index, _ in good])
        warnings.update((index, warning) for (index, _), warning in zip(good, pooled, strict=True))
        for index, audio in self._run(good):
            results[index] = Result(audio, warning=warnings[index])
        return results  # type: ignore[return-value]

    def stream(self, chunks: Iterable[MelLike]) -> Iterator[np.ndarray]:
        """Vocode one utterance whose mel arrives in pieces (a TTS model's frames as it makes them): chunks
        [n_mels, t_i] (numpy or torch, any float dtype, t_i >= 0) in order -> float32 audio pieces, yielded as soon
        as they are final, whose concatenation is `vocoder([whole mel])[0]`, [sum(t_i) * hop] samples at
        `sample_rate` (measured: max abs 5.8e-5, SNR 96 dB, hifigan_v1 fp32, 30 s in chunks of 7-100 frames).

        A frame's audio depends on `context` frames each side of it (the model's receptive field), so each
        chunk yields the audio of the frames that now have `context` frames after them, and the end of
        `chunks` yields the rest: the audio lags the mel by `context` frames (hifigan_v1 13 = 151 ms, gsv_v4 12 =
        120 ms, 256x BigVGANs 38 = 406 ms). Each chunk's forward runs its new frames with `context` frames on
        each side again: chunks of t frames cost (t + 2 * context) / t of one call's work (t = 100 at hifigan_v1:
        1.26x), and the mel held between chunks stays at 2 * context frames. A chunk that gives no frame its
        right context yet (at the start, chunks shorter than `context`) yields nothing; its frames come later.

        Each chunk is checked as a call's mels are (bands on axis 0, floats, no NaN or Inf) and converted from
        `mel_scale`. The mel conventions (log10, dB, normalised, ...: `mel_convention`) are judged once, on the
        first JUDGED_FRAMES frames (96, about 1 s; a mel judged on fewer is often misread) as soon as they have
        arrived, or on the whole mel where it is shorter, before the stream's last piece.
        Raises ValueError naming the chunk (`chunk #3: ...`) for a chunk that fails the checks, or the frames
        (`frames 0-95: ...`) for a convention refused; the pieces yielded before it stand. A doubt is logged as a
        warning and the stream goes on.
        """
        context = self.context
        held = np.zeros((self.n_mels, 0), np.float32)  # utterance frames [start, start + held's frames)
        start = done = 0  # done: frames whose audio was yielded
        first: list[np.ndarray] | None = []  # the raw frames to judge, until judged (None)
        for index, chunk in enumerate(chunks):
            if _no_frames(chunk, self.n_mels):
                continue
            try:
                array, _ = check_mel(chunk, self.n_mels)
            except RowError as err:
                raise ValueError(f"chunk #{index}: {err}") from None
            if first is not None:
                first.append(array)
                if start + held.shape[1] + array.shape[1] >= JUDGED_FRAMES:
                    self._judge(first)
                    first = None
            held = np.concatenate([held, to_natural_log(array, self.checks.scale)], axis=1)
            ready = start + held.shape[1] - context  # frames with `context` frames after them
            if ready <= done:
                continue
            yield self._frames(held, start, done, ready)
            done = ready
            keep = max(done - context, 0)
            held, start = held[:, keep - start :], keep
        if first:
            self._judge(first)
        end = start + held.shape[1]
        if end > done:
            yield self._frames(held, start, done, end)

    def _judge(self, frames: list[np.ndarray]) -> None:
        """A stream's conventions, judged once on its first frames (at most JUDGED_FRAMES): ValueError where they
        are refused, a warning where in doubt."""
        mel = np.concatenate(frames, axis=1)[:, :JUDGED_FRAMES]
        which = f"frames 0-{mel.shape[1] - 1}"
        try:
            _, warning = self.checks.read(mel)
        except RowError as err:
            raise ValueError(f"{which}: {err}") from None
        if warning:
            log.warning("stream, %s: %s", which, warning)

    def _frames(self, held: np.ndarray, start: int, first: int, end: int) -> np.ndarray:
        """The audio of utterance frames [first, end) from `held`, the mel of frames [start, ...)."""
        ((_, audio),) = self._run([(0, np.ascontiguousarray(held))])
        return audio[(first - start) * self.hop_length : (end - start) * self.hop_length].copy()

    def _run(self, items: list[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
        plan = ChunkPlan(self.window, self.context, self.batch, self.preset.silence, self.hop_length)
        if self.engine.shapes is None:  # eager takes any shape: rows and batches no larger than this call fills
            powers = torch.device(self.engine.device).type == "cuda"  # cuDNN times each new shape: keep them few
            plan = fitted_plan(plan, (mel.shape[1] for _, mel in items), powers)
        return vocode_audio(self.engine, items, plan)

    def describe(self) -> str:
        """One line: preset, engine (backend, precision, device, shape) and packing."""
        return (f"{self.preset.name} {self.sample_rate} Hz, {self.engine.describe()}, window {self.window} "
                f"+ 2 x {self.context} context, batch {self.batch}")  # fmt: skip

    def __repr__(self) -> str:
        return f"Vocoder({self.describe()})"
