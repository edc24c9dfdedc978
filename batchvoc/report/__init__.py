"""The job report: report.html in output.dir, one self-contained page a user opens in any browser, offline.

    from batchvoc.report import write_report
    write_report(output_dir)                  # python -m batchvoc.report OUTPUT_DIR does the same

It shows throughput over time per actor, start-up, shard timing (read / vocode / write), the round-trip mel-error
distribution and the worst rows' input and output mels (when the job has `mel_error`), failed rows by reason, and
the job's resolved settings.
"""

from batchvoc.report.render import build, write_report

__all__ = ["build", "write_report"]
