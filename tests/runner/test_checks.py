"""runner/checks.py: what is checked before torch or Ray, here a checkpoint path that does not exist or is a URL."""

from __future__ import annotations

import pytest

from batchvoc.errors import ConfigError
from batchvoc.runner.checks import PRETRAINED_PRESETS, check_checkpoint_exists


@pytest.mark.parametrize("given", [None, "", "random", "pretrained", "exists"])
def test_words_and_paths_that_exist_pass(tmp_path, given):
    if given == "exists":
        given = str(tmp_path / "g.pth")
        (tmp_path / "g.pth").write_bytes(b"weights")
    check_checkpoint_exists(given)


def test_a_path_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(ConfigError) as err:
        check_checkpoint_exists(str(tmp_path / "nothere.pth"))
    assert (
        err.value.key == "model.checkpoint" and err.value.message == f"{str(tmp_path / 'nothere.pth')!r} does not exist"
    )


def test_a_checkpoint_url_is_refused_as_one_the_driver_does_not_read():
    """An object store's checkpoint is not fetched: the check says so rather than that it 'does not exist'."""
    with pytest.raises(ConfigError) as err:
        check_checkpoint_exists("s3://models/gsv-v4-pretrained/vocoder.pth")
    assert err.value.key == "model.checkpoint" and "is a URL" in err.value.message, err.value.message


def test_tensorrt_that_is_not_installed_is_named_before_anything_starts():
    """A local cluster's workers run here: tensorrt without its packages stops at the quick checks, so a sweep's
    tensorrt job is refused before the jobs ahead of it run (this machine has no TensorRT)."""
    import importlib.util

    from batchvoc.backends import check_installed

    if importlib.util.find_spec("tensorrt") and importlib.util.find_spec("torch_tensorrt"):
        pytest.skip("TensorRT is installed here")
    from pathlib import Path

    with pytest.raises(ConfigError) as err:
        check_installed("tensorrt")
    # without a GPU the install would not help: that comes first
    why = "not installed here" if Path("/dev/nvidiactl").exists() else "this machine has none"
    assert err.value.key == "engine.backend" and why in err.value.message, err.value.message
    for backend in ("auto", "aoti", "inductor", "eager"):
        check_installed(backend)


def test_a_sweep_checks_the_demos_settings_before_it_makes_its_input(tmp_path):
    """check_sweep skipped the demo without a manifest: each job then made its input and log folder and was refused
    by its settings (engine.batch=0), one after the other. Its settings and quick checks but the manifest come first."""
    from batchvoc.cli import compose
    from batchvoc.runner.checks import check_sweep

    jobs = [compose(["job=demo", f"output.dir={tmp_path / 'out'}", f"engine.batch={b}"]) for b in (2, 0)]
    with pytest.raises(ConfigError, match=r"must be at least 1, not 0 \(job 1 of the sweep\)") as err:
        check_sweep(jobs)
    assert err.value.key == "engine.batch"
    check_sweep(jobs[:1])  # a good demo passes without its manifest
    assert not (tmp_path / "out" / "demo_input").exists()


def test_no_checkpoint_for_a_preset_is_named_as_the_loader_names_it():
    """No checkpoint at all was left to the model loader, after torch and Ray had started; with the preset known it
    is refused here, in the loader's words, with where to get the weights."""
    from batchvoc.models import load_vocoder

    for empty in (None, "", "  "):
        with pytest.raises(ConfigError) as early:
            check_checkpoint_exists(empty, "gsv_v4")
        assert early.value.key == "model.checkpoint" and "huggingface.co/lj1995/GPT-SoVITS" in early.value.message
    with pytest.raises(ConfigError) as late:
        load_vocoder("gsv_v4", None)
    assert str(early.value) == str(late.value)


def test_pretrained_for_a_preset_without_weights_is_named_as_the_loader_names_it():
    """`pretrained` for a preset that ships no weights was left to the model loader, after Hydra's log folder, torch
    and Ray; it is refused here, in the loader's words. The names agree with the loader's table."""
    from batchvoc.models import load_vocoder
    from batchvoc.models.pretrained import PRETRAINED

    assert set(PRETRAINED_PRESETS) == set(PRETRAINED)
    with pytest.raises(ConfigError) as early:
        check_checkpoint_exists("pretrained", "gsv_v4")
    assert early.value.key == "model.checkpoint" and "huggingface.co/lj1995/GPT-SoVITS" in early.value.message
    with pytest.raises(ConfigError) as late:
        load_vocoder("gsv_v4", "pretrained")
    assert str(early.value) == str(late.value)
    check_checkpoint_exists("pretrained", "hifigan_v1_universal")  # it ships them


def test_a_manifest_without_mel_columns_is_refused_before_the_weights_are_read(tmp_path):
    """A manifest whose columns are wrong throughout was refused when the job planned, after the weights were read
    (7.9 s into a pretrained hifigan_v1 job on a 2-core CPU; 1.3 s now); the quick checks read the first part with
    rows and name its missing column. An empty first part is passed over; every part is checked again when the job
    plans."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batchvoc.cli import compose
    from batchvoc.runner.checks import quick_checks
    from batchvoc.settings import JobSettings

    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"id": pa.array([], pa.string())}), folder / "a_empty.parquet")
    pq.write_table(pa.table({"id": ["u1", "u2"], "text": ["hello", "world"]}), folder / "b_rows.parquet")
    job = compose(["job=hifigan_v1", "model.checkpoint=pretrained", f"input.manifest={folder}",
                   f"output.dir={tmp_path / 'out'}"])  # fmt: skip
    with pytest.raises(ConfigError) as err:
        quick_checks(JobSettings.from_config(job))
    assert err.value.key == "input.manifest", err.value
    assert "b_rows.parquet" in err.value.message and "mel_path" in err.value.message, err.value.message
