"""Checkpoints that describe themselves: safetensors weights + JSON config and model card.

A model folder holds:
- `model.safetensors`: tensors under `generator.*` (and `discriminator.*` when shipped);
- `config.json`: {"format", "family", "config" (the architecture dataclass), "card" (the model card),
  "weights_sha256"}.
`load_model(name_or_path)` rebuilds any registered family from those two files alone. An upscaler folder may also
hold `detail.safetensors`: the generator of its GAN end, same architecture, described by config.json's "detail"
entry (file, weights_sha256, card); `save_detail_weights` / `load_detail_weights` (network interpolation,
generation/upscale.py). Nothing here
unpickles: pickles (.pt/.pth/.pkl) are refused with a message saying how to convert them.

Training state for `--resume` is one safetensors file whose metadata holds the JSON state (step,
options, optimizer hyper-parameters), so it is written with a single atomic rename. A write killed half-way leaves
only temporary files (ours, `.NAME.XXXXXXXX.tmp.SUFFIX`, and safetensors' own `.tmpXXXXXX`), which
`remove_partial_writes` finds by name and a resumed run removes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .images import atomic_path
from .models import ModelFamily, get_family

FORMAT = "dgf-checkpoint/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
DETAIL_FILE = "detail.safetensors"  # optional second end of a network interpolation (the upscaler's GAN end)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, of an unknown family, or does not match its config."""


def default_weights_dir() -> Path:
    """`$DGF_WEIGHTS_DIR`, else the repository's `weights/` folder."""
    env = os.environ.get("DGF_WEIGHTS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "weights"


def list_models(weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the model folders (those with a config.json) in the weights folder, sorted."""
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())


def resolve_model_path(name_or_path: str | os.PathLike, weights_dir: str | os.PathLike | None = None) -> Path:
    """A folder path as given, or a model name looked up in the weights folder."""
    p = Path(name_or_path)
    if p.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{p} looks like a pickle; pickles can run arbitrary code, so they are never loaded. "
            "Convert it to a state dict in safetensors first (see docs/training.md, 'Loading other StyleGAN2 weights')."
        )
    if p.is_dir():
        return p
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    cand = root / str(name_or_path)
    if os.sep not in str(name_or_path) and cand.is_dir():
        return cand
    known = ", ".join(list_models(root)) or "none"
    raise CheckpointError(f"no model folder {str(name_or_path)!r} (as a path or in {root}); available: {known}")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    path, tmp = atomic_path(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_tensors_atomic(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    path, tmp = atomic_path(path)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        # safetensors writes a temporary file of its own (mode 0600) and renames it over `tmp`: ordinary
        # permissions again (0666 less the umask), as for any other output
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# what a write killed half-way leaves: atomic_path's `.NAME.XXXXXXXX.tmp.SUFFIX` (mkstemp's 8 random characters),
# and the `.tmpXXXXXX` that safetensors' save_file writes before its own rename
PARTIAL_WRITE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$|^\.tmp[A-Za-z0-9]{6}$")


def remove_partial_writes(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of interrupted writes in `folder` (not below it), found by name; return them.
    Call it only on a folder no other process is writing to (a run folder when its run resumes)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        if PARTIAL_WRITE.match(p.name) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return sorted(removed)


def save_model(
    folder: str | os.PathLike,
    family: str,
    config: Any,
    generator: nn.Module,
    discriminator: nn.Module | None = None,
    card: dict[str, Any] | None = None,
    dtype: torch.dtype | None = torch.float16,
) -> Path:
    """Write `folder/model.safetensors` then `folder/config.json` (each atomically). Floating tensors are
    stored as `dtype` (fp16 keeps shipped weights small; None keeps them as they are)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("generator", generator), ("discriminator", discriminator)):
        if module is None:
            continue
        for k, v in module.state_dict().items():
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            tensors[f"{prefix}.{k}"] = v
    save_tensors_atomic(tensors, folder / WEIGHTS_FILE)
    meta = {
        "format": FORMAT,
        "family": family,
        "config": dataclasses.asdict(config),
        "card": card or {},
        "weights_sha256": file_sha256(folder / WEIGHTS_FILE),
    }
    write_json_atomic(meta, folder / CONFIG_FILE)
    return folder


@dataclass
class LoadedModel:
    name: str
    path: Path
    family: ModelFamily
    config: Any
    generator: nn.Module  # eval mode, no grad
    discriminator: nn.Module | None
    card: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""


def read_config(folder: Path) -> dict[str, Any]:
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path} is not a {FORMAT} config (format={meta.get('format') if isinstance(meta, dict) else None!r})")
    return meta


def _load_into(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, where: Path) -> None:
    sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    own = module.state_dict()
    missing = sorted(set(own) - set(sub))
    unexpected = sorted(set(sub) - set(own))
    bad = sorted(k for k in set(own) & set(sub) if own[k].shape != sub[k].shape)
    if missing or unexpected or bad:
        detail = "; ".join(
            s
            for s in (
                f"missing {missing[:5]}" if missing else "",
                f"unexpected {unexpected[:5]}" if unexpected else "",
                f"shape mismatch {[(k, tuple(sub[k].shape), tuple(own[k].shape)) for k in bad[:3]]}" if bad else "",
            )
            if s
        )
        raise CheckpointError(f"weights in {where} do not match the {prefix} its config describes: {detail}")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in sub.items()})


def load_model(
    name_or_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    with_discriminator: bool = False,
    weights_dir: str | os.PathLike | None = None,
    verify: bool = True,
) -> LoadedModel:
    """Rebuild a model from its folder (or its name in the weights folder). Raises CheckpointError."""
    folder = resolve_model_path(name_or_path, weights_dir)
    meta = read_config(folder)
    try:
        family = get_family(meta["family"])
        config = family.make_config(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_FILE}: bad model config: {e}") from None
    wpath = folder / WEIGHTS_FILE
    if not wpath.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_FILE}")
    sha = file_sha256(wpath)
    if verify and meta.get("weights_sha256") and meta["weights_sha256"] != sha:
        raise CheckpointError(f"{wpath} does not match the sha256 in its config.json: the file is corrupt or was replaced")
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{wpath} is not a readable safetensors file: {e}") from None
    gen = family.generator(config)
    _load_into(gen, tensors, "generator", wpath)
    disc = None
    if with_discriminator:
        if family.discriminator is None or not any(k.startswith("discriminator.") for k in tensors):
            raise CheckpointError(f"{folder} ships no discriminator")
        disc = family.discriminator(config)
        _load_into(disc, tensors, "discriminator", wpath)
        disc = disc.to(device).eval().requires_grad_(False)
    gen = gen.to(device).eval().requires_grad_(False)
    return LoadedModel(folder.name, folder, family, config, gen, disc, meta.get("card", {}), sha)


# ---- the detail end of a network interpolation (upscalers) --------------------------------------------------

def save_detail_weights(folder: str | os.PathLike, generator: nn.Module, card: dict[str, Any],
                        dtype: torch.dtype | None = torch.float16) -> Path:
    """Write `generator` (the GAN end, same architecture as the folder's model) as `folder/detail.safetensors` and
    describe it in config.json's "detail" entry; the folder's own weights (the PSNR end) stay as they are."""
    folder = Path(folder)
    meta = read_config(folder)
    loaded = load_model(folder)  # the architecture the detail weights must match
    own = generator.state_dict()
    _load_into(loaded.generator, {f"generator.{k}": v for k, v in own.items()}, "generator", folder / DETAIL_FILE)
    tensors = {f"generator.{k}": (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in own.items()}
    save_tensors_atomic(tensors, folder / DETAIL_FILE)
    meta["detail"] = {"file": DETAIL_FILE, "weights_sha256": file_sha256(folder / DETAIL_FILE), "card": card}
    write_json_atomic(meta, folder / CONFIG_FILE)
    return folder / DETAIL_FILE


def load_detail_weights(model: LoadedModel, verify: bool = True) -> dict[str, torch.Tensor] | None:
    """The generator state dict of `model`'s detail end (on the model's device, its dtype), or None when its folder
    has none. Raises CheckpointError for a missing, corrupt or mismatched file."""
    entry = read_config(model.path).get("detail")
    if not entry:
        return None
    path = model.path / str(entry.get("file", DETAIL_FILE))
    if not path.is_file():
        raise CheckpointError(f"{model.path / CONFIG_FILE} describes detail weights, but {path.name} is missing")
    if verify and entry.get("weights_sha256") and entry["weights_sha256"] != file_sha256(path):
        raise CheckpointError(f"{path} does not match the sha256 in its config.json: the file is corrupt or was replaced")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    net = model.family.generator(model.config)
    _load_into(net, tensors, "generator", path)
    device = next(model.generator.parameters()).device
    return {k: v.to(device) for k, v in net.state_dict().items()}


# ---- training state (resume) ---------------------------------------------------------------------------

def _flatten_optimizer(prefix: str, opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain_state = {}, {}
    for idx, st in opt_state["state"].items():
        plain_state[str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.state.{idx}.{k}"] = v
            else:
                plain_state[str(idx)][k] = v
    return tensors, {"param_groups": opt_state["param_groups"], "plain_state": plain_state}


def _unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(v) for i, v in meta["plain_state"].items()}
    for key, v in tensors.items():
        if key.startswith(prefix + ".state."):
            idx, name = key[len(prefix) + 7 :].split(".", 1)
            state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_state(
    path: str | os.PathLike,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    info: dict[str, Any],
) -> None:
    """All weights, buffers and optimizer moments in one safetensors file; `info` (JSON) in its metadata."""
    tensors: dict[str, torch.Tensor] = {}
    for name, m in modules.items():
        tensors.update({f"{name}.{k}": v for k, v in m.state_dict().items()})
    opt_meta = {}
    for name, opt in optimizers.items():
        t, meta = _flatten_optimizer(f"opt_{name}", opt.state_dict())
        tensors.update(t)
        opt_meta[name] = meta
    save_tensors_atomic(tensors, path, metadata={"dgf_state": json.dumps({"info": info, "optimizers": opt_meta})})


def read_training_info(path: str | os.PathLike) -> dict[str, Any]:
    """The `info` of a training state file (step, options, config...) without loading its tensors."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return json.loads((f.metadata() or {})["dgf_state"])["info"]
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable training checkpoint: {e}") from None


def load_training_state(
    path: str | os.PathLike,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> dict[str, Any]:
    """Restore modules and optimizers in place from `save_training_state`'s file; return its info."""
    path = Path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            state = json.loads((f.metadata() or {})["dgf_state"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable training checkpoint: {e}") from None
    for name, m in modules.items():
        _load_into(m, tensors, name, path)
    for name, opt in optimizers.items():
        opt.load_state_dict(_unflatten_optimizer(f"opt_{name}", tensors, state["optimizers"][name]))
    return state["info"]


# ---- small auxiliary networks (attribute classifier, identity embedding, MTCNN) --------------------------------

def save_net(folder: str | os.PathLike, net: nn.Module, fmt: str, card: dict[str, Any]) -> Path:
    """A small auxiliary network (attribute classifier, identity embedding): model.safetensors + config.json
    holding its format, config dataclass (`net.cfg`), card and weights hash."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(net.state_dict(), folder / "model.safetensors")
    write_json_atomic({"format": fmt, "config": dataclasses.asdict(net.cfg), "card": card,
                       "weights_sha256": file_sha256(folder / "model.safetensors")}, folder / "config.json")
    return folder


def load_net(folder: str | os.PathLike, fmt: str, cfg_cls: type, net_cls: type, device: str | torch.device = "cpu"
             ) -> tuple[nn.Module, dict[str, Any], str]:
    """Inverse of `save_net`: (net in eval mode without grads, card, weights sha256). Raises CheckpointError."""
    folder = Path(folder)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not w_path.is_file():
        raise CheckpointError(f"{folder} is not a model folder (config.json + model.safetensors)")
    meta = json.loads(cfg_path.read_text())
    if meta.get("format") != fmt:
        raise CheckpointError(f"{cfg_path} is not a {fmt} config (format={meta.get('format')!r})")
    sha = file_sha256(w_path)
    if meta.get("weights_sha256") and meta["weights_sha256"] != sha:
        raise CheckpointError(f"{w_path} does not match the sha256 in its config.json")
    net = net_cls(cfg_cls(**meta["config"]))
    net.load_state_dict(load_file(str(w_path)))
    return net.to(device).eval().requires_grad_(False), meta.get("card", {}), sha
