"""Which C++ runtime a loaded AOTInductor package binds to.

torch's own libraries (libc10, libtorch_cpu, libtorch_cuda, libtorch_python; built with gcc-toolset-13) export
their copies of libstdc++'s std::regex internals. A package's wrapper `.so` is compiled on the machine by its own
g++ and calls those internals through the dynamic linker; bound to torch's copies instead of the system libstdc++
they were compiled against, `parse_device_str` (a std::regex in torch's aoti_runtime/model_base.h) crashed every
package load on the H200 image (torch 2.11+cu130, Ubuntu g++ 13.3; a one-layer Linear package too; cuda-gdb
backtrace in BENCHMARKS.md). Putting the system libstdc++ into the process's global symbol scope before torch is
imported makes the wrapper bind to it; that is what LD_PRELOAD of it did there as well.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys


def share_libstdcxx() -> bool:
    """Load the system libstdc++ with RTLD_GLOBAL, once, before torch: True when done here, False where it cannot
    matter (not Linux, torch already imported: its libraries are in place) or no libstdc++ is found."""
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return False
    name = ctypes.util.find_library("stdc++")
    if name is None:
        return False
    try:
        ctypes.CDLL(name, mode=os.RTLD_GLOBAL)
    except OSError:
        return False
    return True


def libstdcxx_is_global() -> bool:
    """True where the system libstdc++ is in the process's global symbol scope (batchvoc imported before torch,
    LD_PRELOAD, or a host program linked against it), so a package's wrapper binds to it; always True off Linux.
    Probed by std::locale::classic(), which only libstdc++ defines."""
    if not sys.platform.startswith("linux"):
        return True
    try:
        ctypes.CDLL(None)["_ZNSt6locale7classicEv"]
    except (AttributeError, OSError):
        return False
    return True
