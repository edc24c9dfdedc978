"""Write a synthetic mel manifest of a given size, for throughput and scaling runs (speed does not depend on values).

    python jobs/make_manifest.py /data/synth --preset gsv_v4 --hours 2 --seconds 10 --files 4

--first-id N numbers the rows from N (synth_N, ...) and seeds from N, so several processes can each write a part
of one large manifest (one folder each; a glob over the folders is one manifest with unique ids).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchvoc.models.presets import get_preset


def write_synthetic(folder: Path, preset_name: str, hours: float, seconds: float, files: int, row_group: int,
                    first_id: int = 0) -> int:  # fmt: skip
    """Rows of `seconds` each (±20%) totalling `hours`, split over `files` Parquet files (fewer where there are fewer
    rows: no file is empty), ids from first_id; returns the row count."""
    preset = get_preset(preset_name)
    frames_per_second = preset.sample_rate / preset.hop_length
    rows = max(int(hours * 3600 / seconds), 1)
    rng = np.random.default_rng(first_id)
    schema = pa.schema([("id", pa.string()), ("mel", pa.list_(pa.float32())), ("n_frames", pa.int32()),
                        ("n_mels", pa.int32())])  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for f, chunk in enumerate(np.array_split(np.arange(first_id, first_id + rows), min(files, rows))):
        with pq.ParquetWriter(folder / f"part{f:03d}.parquet", schema) as writer:
            for group in np.array_split(chunk, max(len(chunk) // row_group, 1)):
                batch = []
                for i in group:
                    n = int(seconds * frames_per_second * rng.uniform(0.8, 1.2))
                    mel = (-6 + 2 * rng.standard_normal((preset.n_mels, n))).astype(np.float32)
                    batch.append(dict(id=f"synth_{i:07d}", mel=mel.ravel(), n_frames=n, n_mels=preset.n_mels))
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--preset", default="gsv_v4")
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="mean utterance length")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--row-group", type=int, default=500)
    parser.add_argument("--first-id", type=int, default=0, help="number rows (and seed) from here")
    args = parser.parse_args()
    rows = write_synthetic(args.folder, args.preset, args.hours, args.seconds, args.files, args.row_group,
                           args.first_id)  # fmt: skip
    preset = get_preset(args.preset)
    frames = sum(pq.read_table(p, columns=["n_frames"])["n_frames"].to_numpy().sum()
                 for p in (args.folder / f"part{f:03d}.parquet" for f in range(min(args.files, rows))))  # fmt: skip
    hours = frames * preset.hop_length / preset.sample_rate / 3600  # what was written (rows are whole, +-20%)
    plural = "s" if rows != 1 else ""
    print(f"wrote {rows} row{plural} ({hours:.3f} h of {args.preset} audio; asked {args.hours} h) to {args.folder}")
    print(
        "their mels are noise: a job over them with real weights marks rows suspect (exit 2) unless it is given "
        "check.max_mel_error=null"
    )


if __name__ == "__main__":
    main()
