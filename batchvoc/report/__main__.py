"""python -m batchvoc.report OUTPUT_DIR [...]: (re-)render report.html of finished or running jobs."""

from __future__ import annotations

import argparse
import logging
import sys

from batchvoc.errors import reader_gone
from batchvoc.report import write_report
from batchvoc.storage import describe, is_store_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchvoc.report", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("output_dir", nargs="+", help="a job's output.dir (local path or URL)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    status = 0
    for out in args.output_dir:
        try:
            print(write_report(out))
        except Exception as err:
            if not isinstance(err, ValueError) and not is_store_error(err):
                raise
            # an object store's own errors too (botocore's NoCredentialsError is no OSError): one line, no traceback
            said = describe(err, out) if is_store_error(err) else err
            print(f"{out}: cannot render the report: {said}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(reader_gone(main))
