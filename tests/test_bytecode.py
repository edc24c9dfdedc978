"""The bytecode cache for images that ship none (batchvoc/bytecode.py), in fresh interpreters: a package without
.pyc files under PYTHONDONTWRITEBYTECODE=1 gets its bytecode cached in batchvoc's folder, and only then."""

import os
import subprocess
import sys

CHILD = """
import sys
from pathlib import Path
from batchvoc.bytecode import use_bytecode_cache
print(use_bytecode_cache(Path(sys.argv[1]), package="shipped"))
import shipped
"""


def _run(tmp_path, **env):
    (tmp_path / "site" / "shipped").mkdir(parents=True, exist_ok=True)
    (tmp_path / "site" / "shipped" / "__init__.py").write_text("VALUE = 1\n")
    paths = [str(tmp_path / "site"), os.getcwd()]
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONDONTWRITEBYTECODE="1", **env)
    environ.pop("PYTHONPYCACHEPREFIX", None)
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "cache")], env=environ, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.strip(), sorted(p.name for p in (tmp_path / "cache").rglob("*.pyc"))


def test_a_package_without_bytecode_gets_it_cached_in_our_folder(tmp_path):
    printed, cached = _run(tmp_path)
    assert printed == str(tmp_path / "cache")
    assert any(name.startswith("__init__.") for name in cached), cached
    assert not (tmp_path / "site" / "shipped" / "__pycache__").exists()  # nothing beside the installed source


def test_the_user_s_choice_and_shipped_bytecode_are_left_alone(tmp_path):
    assert _run(tmp_path, BATCHVOC_PYCACHE="off") == ("None", [])
    (tmp_path / "site" / "shipped" / "__pycache__").mkdir()
    (tmp_path / "site" / "shipped" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"")
    assert _run(tmp_path)[0] == "None"
