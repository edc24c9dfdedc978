"""runner/checks.py: what is checked before torch or Ray, here a checkpoint path that does not exist or is a URL."""

from __future__ import annotations

import collections
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchvoc.errors import ConfigError
from batchvoc.manifest.conventions import MelChecks
from batchvoc.runner.checks import PRETRAINED_PRESETS, check_checkpoint_exists
from tests.s3server import s3_server  # noqa: F401 - the session fixture


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


def _declaring(folder, name, bands, values=None, **columns):
    """A manifest part of 4 rows of `bands`-band mels whose n_mels column says `values` (default: `bands` each),
    and each of `columns` (e.g. sample_rate=16000) the same value on every row."""
    from tests.conftest import mel_rows, write_manifest

    rows = mel_rows(4, bands, frames=8, prefix=name)
    for row, value in zip(rows, values or [bands] * 4, strict=True):
        row["n_mels"] = value
    path = write_manifest(folder / f"{name}.parquet", rows)
    if columns:  # integer columns, as the declared conventions are (write_manifest types extra ones as strings)
        table = pq.read_table(path)
        for column, value in columns.items():
            table = table.append_column(column, pa.array([value] * len(rows), pa.int32()))
        pq.write_table(table, path)
    return str(path)


# the shipped jobs' models and where their n_mels comes from: the pretrained weights (hifigan_v1, the preset's 80),
# a weights file (v4: the preset's 100), an NVIDIA folder (v3: its config.json's num_mels, here 128)
JOBS = {"hifigan_v1": ("model.checkpoint=pretrained", 80), "v4_fp16": ("file", 100), "v3_fp16": ("folder", 128)}
# an NVIDIA BigVGAN config.json with every key its reader needs (bigvgan_v2_24khz_100band_256x's, at 128 bands)
NVIDIA_CONFIG = {"resblock": "1", "num_mels": 128, "upsample_rates": [4, 4, 2, 2, 2, 2],
                 "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4], "upsample_initial_channel": 1536,
                 "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
                 "activation": "snakebeta", "use_tanh_at_final": False, "use_bias_at_final": False}  # fmt: skip


def _job(tmp_path, name: str, manifest, *more: str):
    from batchvoc.cli import compose
    from batchvoc.settings import JobSettings

    how = JOBS[name][0]
    if how == "file":
        (tmp_path / "vocoder.pth").write_bytes(b"not read by the quick checks")
        how = f"model.checkpoint={tmp_path / 'vocoder.pth'}"
    elif how == "folder":
        folder = tmp_path / "nvidia"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text(json.dumps(NVIDIA_CONFIG))  # one the loader reads
        (folder / "bigvgan_generator.pt").write_bytes(b"not read by the quick checks")
        how = f"model.checkpoint={folder}"
    cfg = compose([f"job={name}", how, f"input.manifest={manifest}", f"output.dir={tmp_path / 'out'}", *more])
    return JobSettings.from_config(cfg)


@pytest.mark.parametrize("job", sorted(JOBS))
@pytest.mark.parametrize("off", [-16, 20])
def test_mel_bands_the_model_does_not_take_are_refused_before_the_weights_are_read(tmp_path, job, off):
    """Mels whose n_mels column says another band count than the model's were refused when the job planned, after
    Ray started and the weights were read: `python -m batchvoc job=hifigan_v1 model.checkpoint=pretrained
    input.manifest=M output.dir=O` on 100-band mels took 5.7-12.1 s on a 2-core CPU (5 runs; a new user's report:
    9.4 s); the quick checks now refuse it in 0.77-1.10 s (5 runs, shell clock, the same command; v4_fp16 on 64-band
    mels: 4.9 s -> 0.73 s), in the plan's words, for too many bands and too few, whatever the preset and wherever
    its n_mels comes from. A job whose every row is right passes; only the first part's footer is read for it."""
    from dataclasses import replace

    from batchvoc.manifest.schema import refuse_if_every_row_declares_wrong
    from batchvoc.models.presets import get_preset
    from batchvoc.runner.checks import quick_checks

    n_mels = JOBS[job][1]
    folder = tmp_path / "in"
    files = [_declaring(folder, "a", n_mels + off), _declaring(folder, "b", n_mels + off)]
    settings = _job(tmp_path, job, folder)
    with pytest.raises(ConfigError) as early:
        quick_checks(settings)
    assert early.value.key == "input.manifest", early.value
    assert f"every row: n_mels is {n_mels + off}, the model takes {n_mels} mel bands" in early.value.message
    with pytest.raises(ConfigError) as late:  # the plan's check, with the preset as the loader would return it
        preset = replace(get_preset(settings.preset), n_mels=n_mels)
        refuse_if_every_row_declares_wrong(files, MelChecks.for_preset(preset).check_declared)
    assert str(early.value) == str(late.value)
    assert not (tmp_path / "out").exists()
    right = tmp_path / "right"
    _declaring(right, "a", n_mels)
    assert quick_checks(_job(tmp_path, job, right)).paths == [str(right / "a.parquet")]


def test_the_early_n_mels_is_the_one_the_loader_builds():
    """model_n_mels reads what load_vocoder builds its model from (the preset YAML's hparams, a folder's
    config.json, model.hparams over them), without torch: for every preset, with and without an n_mels override,
    it agrees with the loaded model's (built on the meta device: no weights made). Both families' config.json
    readers agree with it too."""
    import torch

    from batchvoc.models import _folder_hparams, build_model, load_vocoder
    from batchvoc.models.presets import PRESETS
    from batchvoc.runner.checks import model_n_mels

    for name in sorted(PRESETS):
        for hparams in ({}, {"n_mels": 64}):
            with torch.device("meta"):
                loaded = load_vocoder(name, "random", hparams)[1].n_mels
            assert model_n_mels(name, "random", hparams) == loaded, (name, hparams)
            assert model_n_mels(name, "pretrained", hparams) == model_n_mels(name, None, hparams) == loaded
    for name in ("hifigan_v1_universal", "bigvgan_v2_24khz_100band_256x"):
        preset = PRESETS[name]
        with tempfile.TemporaryDirectory() as folder:
            config = {k: v for k, v in preset.hparams.items() if k != "n_mels"}
            (Path(folder) / "config.json").write_text(json.dumps({**config, "num_mels": 96}))
            for hparams in ({}, {"n_mels": 64}):
                with torch.device("meta"):
                    built = build_model(preset, {**_folder_hparams(preset, Path(folder)), **hparams})
                assert model_n_mels(name, folder, hparams) == built.conv_pre.in_channels, (name, hparams)
    # the config.json key mapping is the loader's own (checkpoint_config): a jik876 config.json without num_mels
    # leaves the preset's bands, a BigVGAN one giving "96" as text is read as 96, both as the loader builds them
    for name, config in (("hifigan_v1_universal", {"resblock": "1"}),
                         ("bigvgan_v2_24khz_100band_256x", {**PRESETS["bigvgan_v2_24khz_100band_256x"].hparams,
                                                            "activation": "snakebeta", "num_mels": "96"})):  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "n_mels"}))
            with torch.device("meta"):
                built = build_model(PRESETS[name], _folder_hparams(PRESETS[name], Path(folder)))
            assert model_n_mels(name, folder) == built.conv_pre.in_channels == (80 if "hifigan" in name else 96)


@pytest.mark.parametrize("case", ["no_num_mels", "not_json", "unknown_preset", "not_a_number"])
def test_where_the_model_n_mels_is_not_surely_known_the_plan_decides(tmp_path, case):
    """A config.json without num_mels or that is no JSON (the loader words it), a preset without a YAML (registered
    by code), a model.hparams n_mels that is no number: no early refusal, the plan's check has the model."""
    from batchvoc.runner.checks import model_n_mels, model_rates

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text({"not_json": "{num_mels: 100", "no_num_mels": '{"resblock": "1"}'}.get(
        case, '{"num_mels": 80}'))  # fmt: skip
    preset = "from_code" if case == "unknown_preset" else "bigvgan_v2_22khz_80band_256x"
    hparams = {"n_mels": "eighty"} if case == "not_a_number" else {}
    assert model_n_mels(preset, str(folder), hparams) is None
    assert model_rates(preset, str(folder), hparams) == ()


def test_rows_that_may_run_are_left_to_the_rows(tmp_path):
    """The refusal is the plan's: the job is refused only where every row of every part declares a band count the
    model does not take. Parts or rows that differ, a row without a value, or a part without the column leave it to
    each row (a wrong row fails alone). Past a first part whose rows can all run no other footer is read (a broken
    second part is the plan's to name); past one whose rows cannot, every part's is: a broken one is named."""
    from batchvoc.manifest.schema import read_footer
    from batchvoc.runner.checks import refuse_other_mel_conventions
    from tests.conftest import mel_rows, write_manifest

    folder = tmp_path / "in"
    wrong, right = _declaring(folder, "a", 100), _declaring(folder, "b", 80)
    mixed = _declaring(folder, "c", 100, [100, 100, 100, 80])
    unknown = _declaring(folder, "d", 100, [100, None, 100, 100])
    without = str(write_manifest(folder / "e.parquet", [{k: v for k, v in r.items() if k != "n_mels"}
                                                        for r in mel_rows(2, 100, frames=8)]))  # fmt: skip
    empty = str(folder / "0_empty.parquet")
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "n_mels": pa.array([], pa.int32())}), empty)
    for files in ([wrong, right], [mixed], [unknown], [wrong, without], [empty, wrong, right]):
        first = read_footer(next(f for f in files if f != empty))
        refuse_other_mel_conventions(files, first, MelChecks(80))
    broken = folder / "z_broken.parquet"
    broken.write_bytes(b"PAR1 cut short")
    refuse_other_mel_conventions([right, str(broken)], read_footer(right), MelChecks(80))
    with pytest.raises(ConfigError, match="z_broken.parquet is not a readable Parquet file"):
        refuse_other_mel_conventions([wrong, str(broken)], read_footer(wrong), MelChecks(80))
    other = _declaring(folder, "f", 64)
    with pytest.raises(ConfigError, match=r"every row declares n_mels 64 or 100: n_mels is 64, the model takes 80"):
        refuse_other_mel_conventions([empty, wrong, other], read_footer(wrong), MelChecks(80))


class _CountingS3:
    """An s3fs filesystem under its own protocol (counts3://) that counts the files it opens, by path: a real
    filesystem on the test's moto server, so what pyarrow reads through it is what an object store serves."""

    protocol = "counts3"

    @classmethod
    def register(cls):
        import fsspec
        import s3fs

        class Counting(s3fs.S3FileSystem):
            protocol = (cls.protocol,)
            opened: collections.Counter = collections.Counter()

            def _open(self, path, *args, **kwargs):
                Counting.opened[self._strip_protocol(path)] += 1
                return super()._open(path, *args, **kwargs)

        fsspec.register_implementation(cls.protocol, Counting, clobber=True)
        return Counting


def test_the_quick_checks_read_the_first_parts_footer_once_from_an_object_store(tmp_path, s3_server):  # noqa: F811
    """The quick checks read the first manifest part's footer three times (its row count, its columns, the values
    its rows declare): three opens of an object-store file, each a HEAD and a GET. Read once, it is handed on: a job
    whose rows may run opens its first part with rows once (an empty part before it once, the parts after it
    never); a job whose every row declares another band count opens each part once, the first not again."""
    import uuid

    from batchvoc import storage
    from batchvoc.runner.checks import quick_checks

    counting = _CountingS3.register()
    bucket = f"footers-{uuid.uuid4().hex[:8]}"
    s3 = s3_server.filesystem()
    s3.mkdir(bucket)
    options = ", ".join(f"{k}: '{v}'" for k, v in s3_server.storage_options.items())
    try:
        for case, bands in (("right", 80), ("wrong", 100)):
            parts = [str(tmp_path / case / "a_empty.parquet"), _declaring(tmp_path / case, "b", bands),
                     _declaring(tmp_path / case, "c", bands)]  # fmt: skip
            pq.write_table(pa.table({"id": pa.array([], pa.string()), "n_mels": pa.array([], pa.int32())}), parts[0])
            for part in parts:
                s3.put_file(part, f"{bucket}/{case}/{Path(part).name}")
            counting.opened.clear()
            settings = _job(tmp_path, "hifigan_v1", f"counts3://{bucket}/{case}/",
                            f"io.storage_options={{{options}}}")  # fmt: skip
            if case == "right":
                assert len(quick_checks(settings).paths) == 3
            else:
                with pytest.raises(ConfigError, match="every row: n_mels is 100, the model takes 80"):
                    quick_checks(settings)
            each = {"right": [1, 1, 0], "wrong": [1, 1, 1]}[case]
            assert counting.opened == {
                f"{bucket}/{case}/{Path(p).name}": n for p, n in zip(parts, each, strict=True) if n
            }
    finally:
        storage.set_options({})


def test_the_mel_band_refusal_imports_neither_torch_nor_ray(tmp_path):
    """The refusal comes from the quick checks alone: a fresh interpreter refuses the job with torch and Ray never
    imported."""
    _declaring(tmp_path / "in", "a", 100)
    script = (
        "import sys\n"
        "from batchvoc.cli import compose\n"
        "from batchvoc.errors import ConfigError\n"
        "from batchvoc.runner.checks import quick_checks\n"
        "from batchvoc.settings import JobSettings\n"
        f"cfg = compose(['job=hifigan_v1', 'model.checkpoint=pretrained', 'input.manifest={tmp_path / 'in'}',\n"
        f"               'output.dir={tmp_path / 'out'}'])\n"
        "try:\n"
        "    quick_checks(JobSettings.from_config(cfg))\n"
        "except ConfigError as err:\n"
        "    print(err)\n"
        "print(*sorted(m for m in ('torch', 'ray') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    said, imported = done.stdout.splitlines()
    assert "every row: n_mels is 100, the model takes 80 mel bands" in said and imported == "", done.stdout


# the shipped jobs' (sample_rate, hop_length) pairs: the output's and the front end's (the preset YAMLs)
RATES = {"hifigan_v1": (22050, 256), "v4_fp16": (48000, 480)}


@pytest.mark.parametrize("job", sorted(RATES))
@pytest.mark.parametrize("column", ["sample_rate", "hop_length"])
def test_rates_the_model_does_not_take_are_refused_before_the_weights_are_read(tmp_path, job, column):
    """The same early refusal for the other declared columns: every row's sample_rate or hop_length another than the
    model's (rows made at 16 kHz, or with a hop of 200) is refused by the quick checks in the plan's words; the
    model's own values pass."""
    from batchvoc.manifest.schema import refuse_if_every_row_declares_wrong
    from batchvoc.models.presets import get_preset
    from batchvoc.runner.checks import quick_checks

    n_mels, (rate, hop) = JOBS[job][1], RATES[job]
    wrong = {"sample_rate": 16000, "hop_length": 200}[column]
    folder = tmp_path / "in"
    files = [_declaring(folder, "a", n_mels, **{column: wrong})]
    settings = _job(tmp_path, job, folder)
    with pytest.raises(ConfigError) as early:
        quick_checks(settings)
    assert early.value.key == "input.manifest" and f"{column} is {wrong}" in early.value.message, early.value
    with pytest.raises(ConfigError) as late:
        refuse_if_every_row_declares_wrong(files, MelChecks.for_preset(get_preset(settings.preset)).check_declared)
    assert str(early.value) == str(late.value)
    right = tmp_path / "right"
    _declaring(right, "a", n_mels, sample_rate=rate, hop_length=hop)
    assert quick_checks(_job(tmp_path, job, right)).paths == [str(right / "a.parquet")]


def test_the_early_rates_are_the_ones_the_loader_builds():
    """model_rates gives the (sample_rate, hop_length) pairs the plan's MelChecks takes from the loaded preset (the
    built model's hop), for every preset, with and without model.hparams' upsample_rates, and from a folder's
    config.json for both families."""
    import torch

    from batchvoc.models import _folder_hparams, build_model, load_vocoder
    from batchvoc.models.presets import PRESETS
    from batchvoc.runner.checks import model_rates

    def loaded(name, checkpoint, hparams):
        with torch.device("meta"):
            preset = load_vocoder(name, checkpoint, hparams)[1]
        return MelChecks.for_preset(preset).rates

    for name in sorted(PRESETS):
        doubled = [*PRESETS[name].hparams["upsample_rates"][:-1], 2 * PRESETS[name].hparams["upsample_rates"][-1]]
        for hparams in ({}, {"upsample_rates": doubled}):
            assert model_rates(name, "random", hparams) == loaded(name, "random", hparams), (name, hparams)
    for name in ("hifigan_v1_universal", "bigvgan_v2_24khz_100band_256x"):
        preset = PRESETS[name]
        config = {k: v for k, v in preset.hparams.items() if k not in ("n_mels", "upsample_rates")}
        with tempfile.TemporaryDirectory() as folder:
            rates = [*preset.hparams["upsample_rates"][:-1], 2 * preset.hparams["upsample_rates"][-1]]
            (Path(folder) / "config.json").write_text(json.dumps({**config, "num_mels": 96, "upsample_rates": rates}))
            with torch.device("meta"):
                hop = build_model(preset, _folder_hparams(preset, Path(folder))).hop_length
            assert hop == math.prod(rates)
            assert model_rates(name, folder) == tuple(dict.fromkeys(((preset.sample_rate, hop),
                                                                     (preset.front_end.sample_rate,
                                                                      preset.front_end.hop_length))))  # fmt: skip
