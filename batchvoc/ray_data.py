"""Vocode inside a Ray Data pipeline: a callable class for `Dataset.map_batches`, one engine per actor.

    import ray
    from batchvoc.ray_data import VocodeBatches, vocode_dataset

    ds = ray.data.read_parquet("s3://corpus/mels/")              # or any pipeline that makes mels
    audio = vocode_dataset(ds, "gsv_v4", checkpoint="/models/vocoder.pth", concurrency=4)
    # the same, spelled out:
    audio = ds.map_batches(VocodeBatches, fn_constructor_kwargs=dict(preset="gsv_v4", checkpoint=...),
                           batch_size=64, batch_format="numpy", num_gpus=1,
                           compute=ray.data.ActorPoolStrategy(min_size=1, max_size=4))

Each actor builds its engine once (in its constructor) and vocodes every batch it is given through the job's
chunk-and-pack. The mel column holds either [n_mels, T] arrays (a tensor column, ragged or not) or the input
manifest's layout: flat C-ordered lists with an `n_frames` column. Output batches keep every other column and add
`audio` (float32 [T * hop] per row; empty where the row failed), `sample_rate`, `status` (`ok` | `error`) and
`error` (the reason, or None): a bad row never fails the pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from batchvoc.api import MelLike, Result, Vocoder
from batchvoc.errors import RowError
from batchvoc.manifest.rows import flat_mel

DEFAULT_BATCH_ROWS = 64


class VocodeBatches:
    """`map_batches` callable class: dict-of-numpy batches with mels in, the same batches with audio out."""

    def __init__(self, preset: str, mel_column: str = "mel", audio_column: str = "audio", keep_mel: bool = False,
                 **vocoder: Any):  # fmt: skip
        """Build the engine: `Vocoder.from_preset(preset, **vocoder)` (checkpoint, backend, precision, device,
        batch, window, hparams, cache_dir, mel_scale, mel_convention, options: as there). mel_column: where the
        mels are; audio_column: where the audio goes; keep_mel: keep the mel column in the output (dropped by
        default: it is bulky)."""
        self.vocoder = Vocoder.from_preset(preset, **vocoder)
        self.mel_column, self.audio_column, self.keep_mel = mel_column, audio_column, keep_mel

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """batch: columns of n rows, `mel_column` among them -> the batch with audio, status and error added.

        Raises KeyError naming the mel column when the batch has none.
        """
        if self.mel_column not in batch:
            raise KeyError(f"no column {self.mel_column!r} in the batch (columns: {', '.join(batch)}); "
                           f"pass mel_column=")  # fmt: skip
        mels, errors = _mels(batch, self.mel_column, self.vocoder.n_mels)
        done = iter(self.vocoder.vocode_each([mel for mel, error in zip(mels, errors, strict=True) if error is None]))
        results = [Result(None, error) if error else next(done) for error in errors]
        out = {k: v for k, v in batch.items() if self.keep_mel or k != self.mel_column}
        empty = np.zeros(0, dtype=np.float32)
        out[self.audio_column] = _object_array([r.audio if r.ok else empty for r in results])
        out["sample_rate"] = np.full(len(results), self.vocoder.sample_rate, dtype=np.int32)
        out["status"] = np.array(["ok" if r.ok else "error" for r in results])
        out["error"] = _object_array([r.error for r in results])
        return out


def _mels(batch: dict[str, np.ndarray], column: str, n_mels: int) -> tuple[list[MelLike | None], list[str | None]]:
    """The batch's mels as [n_mels, T] arrays (None for a null) and, per row, why it cannot be one (or None): flat
    rows with an `n_frames` column are reshaped as a job reads them (manifest.rows.flat_mel, its words)."""
    values = batch[column]
    frames = batch.get("n_frames")
    mels: list[MelLike | None] = []
    errors: list[str | None] = []
    for i in range(len(values)):
        mel, error = values[i], None
        if mel is not None and np.ndim(mel) == 1 and frames is not None:
            try:
                mel = flat_mel(np.asarray(mel), frames[i], n_mels)
            except RowError as err:
                mel, error = None, str(err)
        mels.append(mel)
        errors.append(error)
    return mels, errors


def _object_array(items: list) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def vocode_dataset(ds, preset: str, concurrency: int = 1, batch_size: int = DEFAULT_BATCH_ROWS,
                   num_gpus: float | None = None, **vocoder: Any):  # fmt: skip
    """`ds` with audio added by up to `concurrency` VocodeBatches actors, as many as the cluster has room for
    (keyword arguments as VocodeBatches).

    num_gpus: per actor; None gives 1 where the Ray cluster has GPUs, else 0 (CPU actors, one CPU each).
    Returns the lazy Dataset (nothing runs until it is consumed).
    """
    import ray

    if num_gpus is None:
        num_gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    # up to `concurrency` actors, as the cluster has room (Ray 2.51 deprecates map_batches' `concurrency`)
    pool = ray.data.ActorPoolStrategy(min_size=1, max_size=concurrency)
    return ds.map_batches(VocodeBatches, fn_constructor_kwargs=dict(preset=preset, **vocoder), batch_size=batch_size,
                          batch_format="numpy", compute=pool, num_gpus=num_gpus)  # fmt: skip
