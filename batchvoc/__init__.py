"""batchvoc: mel-spectrogram manifests to audio at corpus scale.

from batchvoc import Vocoder      # the Python API (batchvoc/api.py); imported on first use
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchvoc.native import share_libstdcxx

__version__ = "0.1.0"
__all__ = ["Vocoder", "VocodeBatches"]

if TYPE_CHECKING:
    from batchvoc.api import Vocoder
    from batchvoc.ray_data import VocodeBatches


def __getattr__(name: str) -> Any:
    # lazy: `python -m batchvoc ...` and the workers should not pay for torch before they need it
    if name == "Vocoder":
        from batchvoc.api import Vocoder

        return Vocoder
    if name == "VocodeBatches":
        from batchvoc.ray_data import VocodeBatches

        return VocodeBatches
    raise AttributeError(f"module 'batchvoc' has no attribute {name!r}")


share_libstdcxx()  # before any torch import: AOTInductor packages bind to the system C++ runtime (native.py)
