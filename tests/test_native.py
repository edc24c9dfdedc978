"""batchvoc/native.py: importing batchvoc before torch puts the system libstdc++ in the global symbol scope (where an
AOTInductor package's wrapper finds it first); after torch it changes nothing. Each case in a fresh interpreter."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# std::locale::classic(), defined by libstdc++ only; the global scope is what dlopen(NULL) searches
PROBE = """
import ctypes, sys
{first}
try:
    ctypes.CDLL(None)["_ZNSt6locale7classicEv"]
    print("global")
except AttributeError:
    print("not global")
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the symbol scope is Linux's (glibc)")


def _probe(first: str) -> str:
    code = PROBE.format(first=first)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()  # fmt: skip


def test_batchvoc_before_torch_shares_the_system_libstdcxx():
    assert _probe("pass") == "not global"  # a bare interpreter: the probe can fail
    assert _probe("import batchvoc, torch") == "global"


def test_after_torch_it_does_nothing():
    code = "import torch\nfrom batchvoc.native import share_libstdcxx\nprint(share_libstdcxx())"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr[-2000:]


def test_libstdcxx_is_global_says_which_order_the_process_took():
    code = "{first}\nfrom batchvoc.native import libstdcxx_is_global\nprint(libstdcxx_is_global())"
    for first, want in (("import batchvoc, torch", "True"), ("import torch", "False")):
        run = subprocess.run([sys.executable, "-c", code.format(first=first)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert run.stdout.strip() == want, (first, run.stderr[-2000:])


def test_aoti_warns_once_with_the_remedy_where_torch_came_first():
    """An aoti package loaded after `import torch; import batchvoc` may crash on some images: the log says why and
    what to do before the load (once); imported in batchvoc's order it says nothing."""
    code = (
        "{first}\nimport logging\nlogging.basicConfig(level=logging.WARNING)\n"
        "from batchvoc.engines import aoti\naoti._warn_unless_libstdcxx_is_global()\n"
        "aoti._warn_unless_libstdcxx_is_global()"
    )
    for first, count in (("import torch, batchvoc", 1), ("import batchvoc, torch", 0)):
        run = subprocess.run([sys.executable, "-c", code.format(first=first)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stderr.count("import batchvoc before torch") == count, (first, run.stderr[-2000:])
