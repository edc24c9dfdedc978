"""python -m batchvoc.manifest audio|npy FOLDER OUT.parquet [--preset NAME] [--workers N]: build an input manifest.

Files that cannot be used are skipped, each with its reason, listed at the end with their count: unreadable or
too short audio; .npy files that a job would refuse by its own row checks (not floats, another shape or n_mels
than --preset's, 0 frames, NaN or Inf values, values beyond float32's range); files whose name a job refuses as
an id (a control character such as a newline, a backslash), so every row written can be vocoded. Exit code: 0
every file made a row, 2 some files were skipped, 1 nothing could be built (no manifest is written then).
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

from batchvoc.errors import counted, reader_gone
from batchvoc.manifest.build import AUDIO_SUFFIXES, audio_row, find_files, npy_row, rows_of, write_manifest
from batchvoc.manifest.rows import shown_id
from batchvoc.models.presets import PRESETS
from batchvoc.storage import is_url

SKIPS_LISTED = 50


def parser() -> argparse.ArgumentParser:
    presets = ", ".join(sorted(PRESETS))
    parse = argparse.ArgumentParser(prog="python -m batchvoc.manifest", description=__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parse.add_subparsers(dest="source", required=True)
    audio = sub.add_parser("audio", help="audio files -> inline natural-log mels through a preset's front end")
    npy = sub.add_parser("npy", help=".npy mels [n_mels, n_frames] -> mel_path rows")
    for command, needed in ((audio, True), (npy, False)):
        # str, not Path: Path("s3://b/x") reads "s3:/b/x", a local name (main refuses URLs, naming them whole)
        command.add_argument("folder", help="a local folder, searched recursively; a file's path below it is its id")
        command.add_argument("out", help="the manifest to write (.parquet), a local path")
        what = "whose mel front end makes the mels" if needed else "whose n_mels the .npy files must have"
        command.add_argument("--preset", required=needed, metavar="NAME", help=f"{what}; one of: {presets}")
        cores = f"this machine has {os.cpu_count()} cores"
        command.add_argument("--workers", type=int, default=1, metavar="N",
                             help=f"processes reading files (default 1; {cores})")  # fmt: skip
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.preset is not None and args.preset not in PRESETS:
        print(f"--preset: unknown preset {args.preset!r}; known presets: {', '.join(sorted(PRESETS))}",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.workers < 1:
        print(f"--workers: must be at least 1, not {args.workers}", file=sys.stderr)
        return 1
    for name in ("folder", "out"):
        if is_url(getattr(args, name)):
            print(f"{name}: {getattr(args, name)} is a URL; python -m batchvoc.manifest reads and writes local files "
                  "only: copy the files to a local folder (or mount the bucket), build the manifest there, and "
                  "upload it to the same place relative to the files (mel_path is relative to the manifest's folder)",
                  file=sys.stderr)  # fmt: skip
            return 1
    folder, args.out = Path(args.folder).expanduser(), Path(args.out)
    if args.source == "audio":
        files = find_files(folder, AUDIO_SUFFIXES)
        make = partial(audio_row, folder=folder, preset_name=args.preset)
    else:
        files = find_files(folder, (".npy",))
        n_mels = PRESETS[args.preset].n_mels if args.preset else None
        make = partial(npy_row, folder=folder, manifest_dir=args.out.parent, n_mels=n_mels)
    result = write_manifest(rows_of(files, make, args.workers), args.out, inline=args.source == "audio")
    for path, reason in result.skipped[:SKIPS_LISTED]:
        print(f"skipped {shown_id(str(path))}: {reason}", file=sys.stderr)  # a newline in a name: escaped
    if len(result.skipped) > SKIPS_LISTED:
        print(f"... and {len(result.skipped) - SKIPS_LISTED} more skipped", file=sys.stderr)
    if result.resampled:
        print(resampled_line(result.resampled, result.rows, args.preset), file=sys.stderr)
    if result.out is None:
        none = "the one file could not" if len(files) == 1 else f"none of the {len(files)} files could"
        print(f"no manifest written: {none} be used", file=sys.stderr)
        return 1
    named = "each named with its reason on stderr"
    skipped = f", skipped {counted(len(result.skipped), 'file')} ({named})" if result.skipped else ""
    print(f"wrote {counted(result.rows, 'row')} to {result.out}{skipped}")
    return 2 if result.skipped else 0


def resampled_line(resampled: dict[tuple[int, int], int], rows: int, preset: str) -> str:
    """One line for a build's resampled files (not one per file): how many of the rows' files, from which rates to
    which, e.g. `resampled 3 of 5 files to the gsv_v4 front end's rate: 2 from 44100 Hz to 24000 Hz, 1 from ...`."""
    pairs = ", ".join(f"{n} from {a} Hz to {b} Hz" for (a, b), n in sorted(resampled.items()))
    return f"resampled {sum(resampled.values())} of {counted(rows, 'file')} to the {preset} front end's rate: {pairs}"


if __name__ == "__main__":
    sys.exit(reader_gone(main))
