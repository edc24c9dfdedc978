"""Submit a batchvoc job to a running Ray cluster (the `ray job submit` path).

    python jobs/submit.py --address http://HEAD:8265 -- job=v4_fp16 input.manifest=s3://... output.dir=/shared/out

The entrypoint runs `python -m batchvoc` on the head node; the driver finds the cluster through RAY_ADDRESS,
which Ray sets for submitted jobs, and starts one worker per GPU. torch and ray are expected on the cluster's
image (a GPU build of torch is large and image-specific); the lighter dependencies come from runtime_env.yaml.
Paths in input.manifest and output.dir must be visible from every node (shared storage): output.dir is required,
absolute or a URL (a relative one would land in Ray's temporary copy of the working directory).

Token authentication (Ray 2.52+, RAY_AUTH_MODE=token on the cluster): the token of the head (`ray get-auth-token`
there) in RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH (or --token-file), or in ~/.ray/auth_token;
token mode is turned on for this client when a token is found. The submitted job's driver gets the head's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's batchvoc, the one that travels with the job

from batchvoc.runner import auth  # noqa: E402


def runtime_env(path: Path) -> dict:
    """runtime_env.yaml, with its working_dir resolved against the repository root."""
    env = yaml.safe_load(path.read_text())
    env["working_dir"] = str((HERE.parent / env.get("working_dir", ".")).resolve())
    return env


def output_dir_problem(overrides: list[str]) -> str | None:
    """Why the overrides cannot be submitted as they are (output.dir missing or relative), or None."""
    values = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("output.dir=")]
    if not values:
        return "set output.dir=PATH: an absolute path on storage every node sees, or a URL (s3://...)"
    value = values[-1]
    if "://" not in value and not Path(value).expanduser().is_absolute():
        return f"output.dir={value} is relative: it would land in Ray's temporary working directory; make it absolute"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=None, help="dashboard address, e.g. http://HEAD:8265 (or RAY_ADDRESS)")
    parser.add_argument("--runtime-env", type=Path, default=HERE / "runtime_env.yaml")
    parser.add_argument("--token-file", type=Path, default=None, help="file holding the cluster's auth token")
    parser.add_argument("--no-wait", action="store_true", help="return after submitting instead of following logs")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to python -m batchvoc")
    args = parser.parse_args(argv)
    problem = output_dir_problem(args.overrides)
    if problem:
        print(f"jobs/submit.py: cannot submit: output.dir: {problem}", file=sys.stderr)
        return 1
    if args.token_file:
        os.environ[auth.TOKEN_PATH] = str(args.token_file.expanduser().resolve())
    auth.for_existing_cluster()
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    entrypoint = "python -m batchvoc " + " ".join(shlex.quote(o) for o in args.overrides)
    try:
        client = JobSubmissionClient(args.address)
        job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env(args.runtime_env))
    except AuthenticationError:
        told = "refused our token" if auth.token_available() else "wants a token and we found none"
        print(f"jobs/submit.py: the cluster {told}: {auth.HOW}", file=sys.stderr)
        return 1
    except (ConnectionError, RuntimeError) as err:
        first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
        print(f"jobs/submit.py: cannot submit to {args.address or os.environ.get('RAY_ADDRESS')}: {first}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"submitted {job_id}: {entrypoint}")
    if args.no_wait:
        return 0
    asyncio.run(_follow(client, job_id))
    status = client.get_job_status(job_id)
    print(f"{job_id}: {status}")
    return 0 if str(status).endswith("SUCCEEDED") else 1


async def _follow(client, job_id: str) -> None:
    """Print the job's log as it grows, until the job ends."""
    async for lines in client.tail_job_logs(job_id):
        print(lines, end="", flush=True)


if __name__ == "__main__":
    sys.exit(main())
