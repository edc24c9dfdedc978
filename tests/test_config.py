"""The configuration: the schema, the packaged tree, and every bad command line stopped in one line naming the key."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from batchvoc.__main__ import main, worst
from batchvoc.cli import compose, help_text, job_names
from batchvoc.config import BatchvocConfig, free_mappings, validate
from batchvoc.errors import ConfigError
from batchvoc.settings import KEYS, JobSettings, hide_secrets, secret_values
from tests.conftest import mel_rows, write_manifest

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_maps_to_a_schema_key_and_takes_its_default():
    schema = OmegaConf.structured(BatchvocConfig)
    assert set(KEYS) == {f.name for f in fields(JobSettings)} - {"config", "job_token"}  # job_token: the driver's
    for key in KEYS.values():
        assert OmegaConf.select(schema, key, default="<missing>") != "<missing>", key
    settings = JobSettings.from_config({"output": {"dir": "/x"}})
    assert settings.batch == schema.engine.batch and settings.precision == "fp16" and settings.fmt == "wav"
    assert settings.mel_scale == "ln" and settings.mel_convention == "error"
    assert settings.max_mel_error == schema.check.max_mel_error == 0.8
    assert settings.storage_options == {} and settings.engine_options == {} and settings.overwrite is False


@pytest.mark.parametrize("job", ["demo", "hifigan_v1", "v3_bf16", "v3_fp16", "v4_bf16", "v4_fp16"])
def test_every_packaged_job_composes_into_valid_settings(job, tmp_path):
    cfg = compose([f"job={job}", f"output.dir={tmp_path}", "model.checkpoint=random"])
    settings = JobSettings.from_config(cfg)
    assert settings.preset == cfg.model.preset and settings.out_dir == str(tmp_path)
    assert settings.config["job_name"] == job
    assert job in job_names()


@pytest.mark.parametrize(
    "overrides, key, words",
    [
        (["engine.batch=eight"], "engine.batch", "'eight' is not an integer"),
        (["+engine.bach=8"], "engine.bach", "unknown key; did you mean engine.batch? (known keys under engine: "),
        (["engine.bach=8"], "engine.bach", "unknown key; did you mean engine.batch?"),
        (["output.dri=x"], "output.dri", "unknown key; did you mean output.dir?"),
        (["+engine.zzz=8"], "engine.zzz", "unknown key (known keys under engine: "),  # nothing close: no guess
        (["+bogus=1"], "bogus", "unknown key"),
        (["engine.precision=fp8"], "engine.precision", "not one of fp32, fp16, bf16"),
        (["check.max_mel_error=big"], "check.max_mel_error", "not a float"),
        (["input.mel_scale=log2"], "input.mel_scale", "not one of ln, log10, db, gsv_norm"),
        (["output.overwrite=maybe"], "output.overwrite", "wrong type"),
        (["+model.hparams.upsample_initial_channel=64", "cluster.cpu_actors=x"], "cluster.cpu_actors", "integer"),
        (["job=nope"], "job", "demo, hifigan_v1"),
        (["+engine.options.kernels=bogus"], "engine.options.kernels", "choose one of traced, opaque"),
        (["+engine.options.fused_max_channels=-1"], "engine.options.fused_max_channels", "0 or more"),
        (["+engine.options.tile_table=/no/such.json"], "engine.options.tile_table", "cannot read a tile table"),
        (["engine.options={kernels: bogus}"], "engine.options.kernels", "choose one of traced, opaque"),
        (["io.bogus={a: 1}"], "io.bogus", "unknown key (known keys under io: storage_options)"),
        (["model.preset=hifigan_v2"], "model.preset", "unknown preset 'hifigan_v2'; known presets: bigvgan_v2_22k"),
        (["log_level=LOUD"], "log_level", "'LOUD' is not one of DEBUG, INFO, WARNING, ERROR"),
        (["engine.backend=aoit"], "engine.backend", "'aoit' is not one of auto, tensorrt, aoti, inductor, eager"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_key(overrides, key, words, tmp_path, capsys):
    argv = ["job=demo", f"output.dir={tmp_path / 'out'}", *overrides]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"batchvoc: cannot run: {key}: ") and words in err and "\n" not in err, err
    assert not (tmp_path / "out").exists()  # stopped before Hydra made its log folder


@pytest.mark.parametrize(
    "override, message",
    [
        ("engine.precision=fp8", "engine.precision: 'fp8' is not one of fp32, fp16, bf16"),
        ("output.format=mp3", "output.format: 'mp3' is not one of wav, flac"),
        ("check.mel_convention=strict", "check.mel_convention: 'strict' is not one of error, warn, off"),
        ("engine.backend=aoit", "engine.backend: 'aoit' is not one of auto, tensorrt, aoti, inductor, eager"),
    ],
)
def test_a_value_outside_the_choices_reads_alike_for_every_key(override, message, tmp_path, capsys):
    """A string that is not one of a key's choices is a wrong value, not a 'wrong type', whether the schema holds the
    key as an Enum (engine.precision) or as a str with fixed choices (engine.backend)."""
    assert main(["job=demo", f"output.dir={tmp_path / 'out'}", override]) == 1
    assert capsys.readouterr().err.strip() == f"batchvoc: cannot run: {message}"


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["input.manifest={tmp}/nowhere"], "input.manifest", "no Parquet files found"),  # the quick checks'
        (["input.manifest={tmp}/in", "model.checkpoint={tmp}/no.pth"], "model.checkpoint", "no.pth"),
        (["input.manifest={tmp}/in", "engine.batch=0"], "engine.batch", "at least 1"),  # the settings' ranges
    ],
)
def test_a_job_refused_by_its_checks_leaves_no_log_folder(overrides, key, words, tmp_path):
    """Refused by its settings or its quick checks (manifest, checkpoint, ...), a job stops before Hydra runs it, as
    a sweep's jobs do: each attempt left output.dir/logs/<time>/ holding the one line the console had said."""
    write_manifest(tmp_path / "in" / "m.parquet", mel_rows(2, 80))
    argv = ["job=hifigan_v1", f"output.dir={tmp_path / 'out'}", *(o.format(tmp=tmp_path) for o in overrides)]
    result = subprocess.run([sys.executable, "-m", "batchvoc", *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("batchvoc: cannot run:")]
    assert said.startswith(f"batchvoc: cannot run: {key}: ") and words in said, said
    assert not (tmp_path / "out" / "logs").exists()


# a key of each free-form mapping (config.free_mappings) and a value it takes: a new mapping needs one here
MAPPING_KEYS = {
    "model.hparams": ("upsample_initial_channel", 64),
    "engine.options": ("kernels", "opaque"),
    "io.storage_options": ("endpoint_url", "http://minio:9000"),
}


@pytest.mark.parametrize("form", ["key", "+key", "whole", "+whole"])
def test_every_free_form_mapping_takes_a_key_or_the_whole_mapping(form, tmp_path):
    assert sorted(free_mappings()) == sorted(MAPPING_KEYS)
    for mapping, (name, value) in MAPPING_KEYS.items():
        given = f"{mapping}.{name}={value}" if "key" in form else f"{mapping}={{{name}: '{value}', other: 1}}"
        if mapping == "engine.options" and "whole" in form:  # engine options are checked: only known keys
            given = f"{mapping}={{{name}: {value}, mode: default}}"
        cfg = compose(["job=demo", f"output.dir={tmp_path}", ("+" if "+" in form else "") + given])
        assert str(OmegaConf.select(cfg, mapping)[name]) == str(value), (form, mapping)


def readme_mapping_examples() -> list[str]:
    """The user guide's overrides that give a whole mapping, as quoted for a shell: `'io.storage_options={...}'`
    (README.md and docs/*.md)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [e for page in pages for e in re.findall(r"`'([\w.]+=\{[^`']*\})'`", page.read_text())]


def test_the_readmes_whole_mapping_overrides_compose_and_run_through_hydra(tmp_path):
    examples = readme_mapping_examples()
    assert any(e.startswith("io.storage_options=") for e in examples), examples
    for example in examples:
        cfg = compose(["job=demo", f"output.dir={tmp_path}", example])
        assert OmegaConf.select(cfg, example.split("=", 1)[0]), example
    minio = 'io.storage_options={endpoint_url: "http://minio:9000", anon: false}'  # the trial's command line
    cfg = compose(["job=demo", f"output.dir={tmp_path}", minio])
    assert OmegaConf.to_container(cfg.io.storage_options) == {"endpoint_url": "http://minio:9000", "anon": False}
    # Hydra's own composition (the one a job runs on), not only the check before it
    example = next(e for e in examples if e.startswith("io.storage_options="))
    command = [sys.executable, "-m", "batchvoc", "job=demo", f"output.dir={tmp_path}", example, "--cfg", "job"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "endpoint_url: http://minio:9000" in result.stdout, result.stdout


def test_an_unknown_key_in_a_plain_dict_is_refused_too():
    with pytest.raises(ConfigError, match="engine.bach") as info:
        validate({"engine": {"bach": 8}})
    assert info.value.key == "engine.bach"


def test_a_sweep_without_multirun_says_to_add_m(tmp_path, capsys):
    assert main(["job=demo", f"output.dir={tmp_path}", "output.subtype=PCM_16,PCM_24"]) == 1
    assert "add -m" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["file", "below_a_file", "dangling_link", "read_only"])
def test_an_unwritable_output_dir_is_named_before_hydra_starts(kind, tmp_path):
    target = tmp_path / "out"
    if kind == "file":
        target.write_text("not a folder")
    elif kind == "below_a_file":
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / "out"
    elif kind == "dangling_link":
        target.symlink_to(tmp_path / "gone")
    else:
        target = read_only_place(tmp_path)
    result = subprocess.run([sys.executable, "-m", "batchvoc", "job=demo", f"output.dir={target}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchvoc: cannot run: output.dir: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "gone").exists()


def read_only_place(tmp_path: Path) -> Path:
    """A folder this process cannot write: mode 0555 for a normal user; a read-only filesystem for root."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder / "out"
    for candidate in ("/sys/fs", "/proc/sys"):
        probe = Path(candidate)
        if probe.is_dir() and (os.statvfs(probe).f_flag & os.ST_RDONLY or not os.access(probe, os.W_OK)):
            return probe / f"batchvoc-{os.getpid()}"
    try:  # root on a writable /sys: /proc refuses new folders to everyone
        os.mkdir("/proc/batchvoc-probe")
    except OSError:
        return Path("/proc") / f"batchvoc-{os.getpid()}"
    pytest.skip("no read-only place for root on this machine")


def test_help_without_a_job_lists_jobs_keys_and_presets():
    result = subprocess.run([sys.executable, "-m", "batchvoc", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    for word in ("job=NAME", "demo", "v4_fp16", "engine.batch", "check.max_mel_error", "gsv_v4", "-m"):
        assert word in result.stdout
    assert help_text() == result.stdout.rstrip("\n")
    # each job's description is its whole first sentence, not a comment line cut mid-sentence
    assert "then vocodes it with the pretrained universal weights." in result.stdout
    assert "--preset hifigan_v1_universal)." in result.stdout


def test_worst_exit_code_of_a_sweep():
    assert worst([0, 0]) == 0 and worst([0, 2]) == 2 and worst([2, 1, 0]) == 1 and worst([]) == 0


def test_the_wheel_carries_the_config_tree(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = tmp_path.glob("batchvoc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {p.relative_to(ROOT).as_posix() for p in (ROOT / "batchvoc" / "conf").rglob("*.yaml")}
    assert packaged and packaged <= names, sorted(packaged - names)
    assert "batchvoc/conf/job/demo.yaml" in names and "batchvoc/conf/bench/bench.yaml" in names


def test_hydra_logs_of_a_url_output_dir_go_to_a_local_folder():
    from batchvoc.config import local_folder

    assert local_folder("/data/out") == "/data/out"
    assert local_folder("s3://bucket/run/1/") == "batchvoc-logs/s3/bucket/run/1"
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        return
    for made in ("outputs/demo/logs/t/batchvoc.log", f"{local_folder('s3://bucket/run')}/logs/t/batchvoc.log"):
        assert subprocess.run(["git", "check-ignore", "-q", made], cwd=ROOT).returncode == 0, f"{made} not ignored"


def test_presets_are_yaml_files_of_the_packaged_tree():
    from batchvoc.models.presets import PRESETS, preset_from_yaml

    folder = ROOT / "batchvoc" / "conf" / "preset"
    assert {p.stem for p in folder.glob("*.yaml")} == set(PRESETS)
    text = (folder / "gsv_v4.yaml").read_text()
    assert preset_from_yaml("gsv_v4", text) == PRESETS["gsv_v4"]
    twin = preset_from_yaml("my_v4", text.replace("upsample_initial_channel: 512", "upsample_initial_channel: 256"))
    assert twin.hparams["upsample_initial_channel"] == 256 and twin.sample_rate == 48000  # a new vocoder: one file
    with pytest.raises(ConfigError, match="preset/bad.yaml.*hop_length"):
        preset_from_yaml("bad", text.replace("hop_length: 480", "hop_length: 500", 1))
    with pytest.raises(ConfigError, match="preset/bad.yaml.*front_end"):
        preset_from_yaml("bad", text.split("front_end:")[0])


def test_the_config_summary_json_records_holds_no_store_secrets(tmp_path):
    """io.storage_options may hold the store's keys (README: endpoint_url, key, secret): summary.json (in output.dir,
    a bucket others read) and report.html record the resolved config with those values redacted; the job uses them."""
    options = ("io.storage_options={endpoint_url: 'http://minio:9000', key: AKIAEXAMPLEKEYID, secret: s3cr3tVALUE, "
               "anon: false, client_kwargs: {aws_session_token: SESSIONtok, region_name: eu-west-1}}")  # fmt: skip
    made = JobSettings.from_config(compose(["job=hifigan_v1", f"output.dir={tmp_path}", options]))
    python = JobSettings(manifest="m", out_dir=str(tmp_path), preset="hifigan_v1_universal", checkpoint="pretrained",
                         storage_options=dict(made.storage_options))  # fmt: skip
    for settings in (made, python):
        assert settings.storage_options["secret"] == "s3cr3tVALUE"  # what the job itself uses
        text = json.dumps(settings.as_config())
        assert not {"AKIAEXAMPLEKEYID", "s3cr3tVALUE", "SESSIONtok"} & set(re.findall(r"\w+", text)), text
        recorded = settings.as_config()["io"]["storage_options"]
        assert recorded["endpoint_url"] == "http://minio:9000" and recorded["anon"] is False
        assert recorded["client_kwargs"]["region_name"] == "eu-west-1" and recorded["secret"] == "<redacted>"
    assert made.storage_options["secret"] == "s3cr3tVALUE" and made.config["io"]["storage_options"]["secret"]


def test_secret_values_are_hidden_where_they_stand_alone_in_text():
    """What Hydra's records and log lines hide: every scalar under a secret-looking name (a whole mapping under
    one too), as a whole value, not where it is part of a longer word or path."""
    options = {"key": "AKIA1", "secret": "ab/cd+ef", "anon": False, "endpoint_url": "http://minio:9000",
               "credentials": {"user": "bob", "port": 9}, "client_kwargs": {"aws_session_token": "tok"}}  # fmt: skip
    values = secret_values(options)
    assert values == {"AKIA1", "ab/cd+ef", "bob", "9", "tok"}
    text = "io.storage_options={key:AKIA1,secret:ab/cd+ef,credentials:{user:bob,port:9}} bobby AKIA12 x/9 tok"
    assert hide_secrets(text, values) == ("io.storage_options={key:<redacted>,secret:<redacted>,credentials:"
                                          "{user:<redacted>,port:<redacted>}} bobby AKIA12 x/9 <redacted>")  # fmt: skip
    assert hide_secrets(text, set()) == text
