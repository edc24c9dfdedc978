"""python -m batchvoc.manifest audio|npy FOLDER OUT.parquet: build an input manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchvoc.manifest.build import audio_rows, npy_rows, write_rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m batchvoc.manifest", description=__doc__)
    sub = parser.add_subparsers(dest="source", required=True)
    audio = sub.add_parser("audio", help="audio files -> inline mels through a preset's front end (copy-synthesis)")
    audio.add_argument("folder", type=Path)
    audio.add_argument("out", type=Path)
    audio.add_argument("--preset", required=True, help="whose mel front end to use, e.g. gsv_v4")
    npy = sub.add_parser("npy", help=".npy mels [n_mels, n_frames] -> mel_path rows")
    npy.add_argument("folder", type=Path)
    npy.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.source == "audio":
        count = write_rows(audio_rows(args.folder, args.preset), args.out, inline=True)
    else:
        count = write_rows(npy_rows(args.folder, args.out.parent), args.out, inline=False)
    print(f"wrote {count} rows to {args.out}")


if __name__ == "__main__":
    main()
