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


def test_every_rewritten_module_is_in_an_engine_key():
    """Each module class an engine's rewritten model holds (the fused upsampler among them) comes from a file the
    engine keys digest (MODEL_SOURCES, or ops.KERNEL_SOURCES for the fused rewrites), so a package traced from a
    module's old code is never loaded for its new code."""
    import inspect
    from pathlib import Path

    from batchvoc.engines import layout
    from batchvoc.engines.ops import KERNEL_SOURCES
    from batchvoc.models.bigvgan import BigVGAN
    from batchvoc.models.hifigan import HiFiGAN

    small = dict(n_mels=20, upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=32,
                 resblock_kernel_sizes=[3, 7], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]])  # fmt: skip
    covered = {f"engines/{name}" for name in KERNEL_SOURCES} | set(MODEL_SOURCES)
    files = set()
    for model, rewrites in [
        (HiFiGAN(**small), layout.Rewrites("channels_last_2d", "conv", "fused", superrows=2)),
        (HiFiGAN(**small), layout.Rewrites("channels_last_2d", "conv", "fused")),
        (BigVGAN(**small), layout.Rewrites("channels_last_2d", "fused", "conv")),
        (BigVGAN(**small), layout.Rewrites("ncl", "fused1g", "conv")),
        (BigVGAN(**small), layout.Rewrites("ncl", "polyphase", "conv")),
    ]:
        for m in layout.apply(model.eval(), rewrites).modules():
            path = Path(inspect.getfile(type(m))).resolve()
            if path.is_relative_to(PACKAGE_ROOT):
                files.add(path.relative_to(PACKAGE_ROOT).as_posix())
    assert "engines/fused_upsample.py" in files
    assert not {f for f in files if not any(f == c or f.startswith(f"{c}/") for c in covered)}
