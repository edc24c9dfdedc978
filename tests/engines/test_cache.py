"""engines/cache.py: the model code's part of every engine key."""

from __future__ import annotations

import shutil

from batchvoc.engines.cache import MODEL_SOURCES, PACKAGE_ROOT, model_code_digest


def _copy_sources(dest):
    for source in MODEL_SOURCES:
        path = PACKAGE_ROOT / source
        if path.is_dir():
            shutil.copytree(path, dest / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest / source)


def test_model_code_digest_follows_the_model_sources(tmp_path):
    """A copy of the sources digests the same; one edited line of a model file (an upgrade, a fix) changes it, so
    no engine traced from the old code is loaded for the new."""
    _copy_sources(tmp_path / "a")
    assert model_code_digest(tmp_path / "a") == model_code_digest()
    _copy_sources(tmp_path / "b")
    hifigan = tmp_path / "b" / "models" / "hifigan.py"
    hifigan.write_text(hifigan.read_text().replace("LRELU_SLOPE = 0.1", "LRELU_SLOPE = 0.2"))
    assert model_code_digest(tmp_path / "b") != model_code_digest()
