"""Submit a batchvoc job to a running Ray cluster (the `ray job submit` path).

    python jobs/submit.py --address http://HEAD:8265 -- job=v4_fp16 input.manifest=s3://... output.dir=/shared/out

The entrypoint runs `python -m batchvoc` on the head node; the driver finds the cluster through RAY_ADDRESS,
which Ray sets for submitted jobs, and starts one worker per GPU. torch and ray are expected on the cluster's
image (a GPU build of torch is large and image-specific); the lighter dependencies come from runtime_env.yaml.
Paths in input.manifest and output.dir must be visible from every node (shared storage).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path

import yaml
from ray.job_submission import JobSubmissionClient

HERE = Path(__file__).resolve().parent


def runtime_env(path: Path) -> dict:
    """runtime_env.yaml, with its working_dir resolved against the repository root."""
    env = yaml.safe_load(path.read_text())
    env["working_dir"] = str((HERE.parent / env.get("working_dir", ".")).resolve())
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=None, help="dashboard address, e.g. http://HEAD:8265 (or RAY_ADDRESS)")
    parser.add_argument("--runtime-env", type=Path, default=HERE / "runtime_env.yaml")
    parser.add_argument("--no-wait", action="store_true", help="return after submitting instead of following logs")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to python -m batchvoc")
    args = parser.parse_args(argv)
    client = JobSubmissionClient(args.address)
    entrypoint = "python -m batchvoc " + " ".join(shlex.quote(o) for o in args.overrides)
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env(args.runtime_env))
    print(f"submitted {job_id}: {entrypoint}")
    if args.no_wait:
        return 0
    asyncio.run(_follow(client, job_id))
    status = client.get_job_status(job_id)
    print(f"{job_id}: {status}")
    return 0 if str(status).endswith("SUCCEEDED") else 1


async def _follow(client: JobSubmissionClient, job_id: str) -> None:
    """Print the job's log as it grows, until the job ends."""
    async for lines in client.tail_job_logs(job_id):
        print(lines, end="", flush=True)


if __name__ == "__main__":
    sys.exit(main())
