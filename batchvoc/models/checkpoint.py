"""Read upstream generator checkpoints into plain state dicts and load them strictly.

Accepted layouts: a plain state dict; one wrapped as {"generator": ...} (HiFi-GAN, BigVGAN) or under
"state_dict" / "model" / "weight"; keys with a DDP "module." prefix; weights as plain `X.weight`, legacy weight
norm (`X.weight_g`, `X.weight_v`) or new-style parametrizations (`X.parametrizations.weight.original0/1`).
Weight norm is folded into `X.weight` = g * v / ||v||, the norm taken over every dim where g has size 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from batchvoc.errors import ConfigError

KEY = "model.checkpoint"
WRAPPER_KEYS = ("generator", "state_dict", "model", "weight", "module", "net_g")
_PARAM_G, _PARAM_V = ".parametrizations.weight.original0", ".parametrizations.weight.original1"


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, Tensor) for v in obj.values())


def unwrap(obj: Any, source: str = "checkpoint") -> dict[str, Tensor]:
    """The tensor dict inside a loaded checkpoint object (at most two wrapper levels deep)."""
    for _ in range(3):
        if _is_state_dict(obj):
            state = dict(obj)
            if all(k.startswith("module.") for k in state):
                state = {k[len("module.") :]: v for k, v in state.items()}
            return state
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    top = ", ".join(map(str, list(obj)[:10])) if isinstance(obj, Mapping) else type(obj).__name__
    raise ConfigError(
        KEY,
        f"{source} holds no generator state dict (found: {top}); expected weights or a dict "
        f"wrapping them under one of {', '.join(WRAPPER_KEYS)}",
    )


def fold_weight_norm(g: Tensor, v: Tensor) -> Tensor:
    """weight = g * v / ||v||, the norm over the dims where g has size 1 (all but dim 0 for torch's default)."""
    g, v = g.float(), v.float()
    if g.dim() == 0:
        dims = list(range(v.dim()))
    else:
        dims = [d for d in range(v.dim()) if g.shape[d] == 1]
    norm = torch.linalg.vector_norm(v, dim=dims, keepdim=True) if dims else v.abs()
    return v * (g / norm)


def fold_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """state with every weight_g/weight_v pair and parametrizations pair folded into a plain `X.weight`."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_v") or key.endswith(_PARAM_V):
            continue
        if key.endswith(".weight_g"):
            base, v_key = key[: -len(".weight_g")], key[: -len("_g")] + "_v"
        elif key.endswith(_PARAM_G):
            base, v_key = key[: -len(_PARAM_G)], key[: -len(_PARAM_G)] + _PARAM_V
        else:
            out[key] = value
            continue
        if v_key not in state:
            raise ConfigError(KEY, f"checkpoint has {key} but not {v_key}: cannot fold weight norm")
        out[base + ".weight"] = fold_weight_norm(value, state[v_key])
    for key in state:  # a lone weight_v / original1 without its g
        if key.endswith(".weight_v") and key[:-2] + "_g" not in state:
            raise ConfigError(KEY, f"checkpoint has {key} but not its weight_g: cannot fold weight norm")
        if key.endswith(_PARAM_V) and key[: -len(_PARAM_V)] + _PARAM_G not in state:
            raise ConfigError(KEY, f"checkpoint has {key} but not its original0: cannot fold weight norm")
    return out


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The plain (weight-norm folded) generator state dict in the checkpoint file at `path`, on CPU."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(KEY, f"checkpoint file {str(p)!r} does not exist")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is a configuration error
        raise ConfigError(KEY, f"cannot read checkpoint {str(p)!r} as torch weights: {_unreadable(p, exc)}") from exc
    return fold_state_dict(unwrap(obj, f"checkpoint {str(p)!r}"))


def _unreadable(path: Path, exc: Exception) -> str:
    """Why torch.load(weights_only=True) refused the file at `path`, in our words (torch's own text advises
    loading it unsafely)."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if found:
        return (f"it holds a Python object ({found[1]}) besides tensors and plain containers, which batchvoc does "
                "not load")  # fmt: skip
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":  # the zip archive torch.save writes since torch 1.6
        return f"its zip archive is not one torch.save wrote, or is damaged or cut short ({size:,} bytes)"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle: torch.save's legacy format
        return f"its pickle is damaged or cut short ({size:,} bytes)"
    return "it is not a file torch.save writes (neither its zip archive nor its pickle)"


def _listing(title: str, items: list[str], limit: int = 4) -> str:
    more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{title} ({len(items)}): {', '.join(items[:limit])}{more}"


def check_compatible(model: nn.Module, state: Mapping[str, Tensor], source: str = "checkpoint") -> None:
    """ConfigError naming missing, unexpected and mis-shaped keys unless `state` fits `model` exactly."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shaped = [
        f"{k} {tuple(state[k].shape)} != model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shaped:
        parts = [
            _listing(title, items)
            for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shaped))
            if items
        ]
        raise ConfigError(KEY, f"{source} does not fit the model (wrong preset?): " + "; ".join(parts))


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the checkpoint at `path` into `model` (strict: keys and shapes must match) and return the model."""
    state = read_state_dict(path)
    check_compatible(model, state, f"checkpoint {str(path)!r}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return model
