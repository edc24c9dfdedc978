"""A bytecode cache for images that ship none: the job's processes stop compiling torch's source at every start.

Docker images commonly set PYTHONDONTWRITEBYTECODE=1 and install packages without .pyc files (the H200 image
does both): then every process compiles each module it imports from source, every time. There `import torch`
took 5.0-6.8 s, and torch plus torch._dynamo 7.7 s, against 3.9 s from a bytecode cache; a job pays it in the
driver, in Ray's own Python processes and in every actor.

`use_bytecode_cache()` (called by the command-line entry points before their heavy imports) points Python at a
bytecode cache of batchvoc's, `<BATCHVOC_CACHE or ~/.cache/batchvoc>/pycache` (sys.pycache_prefix, and
PYTHONPYCACHEPREFIX for the processes the job starts), when torch has no bytecode beside its source and the user
has chosen no cache of their own. Nothing is written beside the installed packages. BATCHVOC_PYCACHE=off keeps
Python's setting as it is.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def default_folder() -> Path:
    """<BATCHVOC_CACHE or ~/.cache/batchvoc>/pycache (the config's engine.cache_dir default, plus pycache)."""
    root = os.environ.get("BATCHVOC_CACHE") or Path.home() / ".cache" / "batchvoc"
    return Path(root, "pycache")


def has_bytecode(package: str) -> bool:
    """Whether `package` (found without importing it) has compiled bytecode for its __init__ beside its source;
    True for a package that is not installed (nothing to do)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return True
    origin = Path(spec.origin)
    return any(origin.parent.joinpath("__pycache__").glob(f"{origin.stem}.*.pyc"))


def use_bytecode_cache(folder: Path | None = None, package: str = "torch") -> Path | None:
    """Cache bytecode under `folder` (default: default_folder()) where `package` ships none and writing is off
    or impossible; returns the folder when it did, None where Python's own setting stands (the user set
    PYTHONPYCACHEPREFIX or BATCHVOC_PYCACHE=off, the package has bytecode, or the folder cannot be made)."""
    if os.environ.get("BATCHVOC_PYCACHE", "").lower() in ("off", "0", "false") or sys.pycache_prefix:
        return None
    if has_bytecode(package):
        return None
    folder = Path(folder or default_folder())
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.debug("no bytecode cache at %s: %s", folder, err)
        return None
    sys.pycache_prefix = str(folder)
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = str(folder)  # Ray's processes and the workers, started by this one
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return folder
