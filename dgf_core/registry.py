"""Which models the UIs offer, and one shared cache of loaded pipelines.

The app and the Streamlit pages never hard-code model names: they ask `generators()` for the model folders
in the weights folder (`$DGF_WEIGHTS_DIR`, else `weights/`) whose family is a generator, read from each
folder's config.json (cheap: no weights are loaded). A new family (StyleGAN2, an upscaler) appears in
every dropdown as soon as it is registered in `dgf_core.models` and its folder is in `weights/`.

`PipelineCache` loads each generator once and hands the same read-only `FacePipeline` to every request
and thread. It only loads names that `generators()` lists, so a UI or API caller cannot make the
server open arbitrary paths. Its key includes the config file's modification time, so a model folder
replaced on disk (a newer training export) is reloaded on the next request.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CONFIG_FILE, CheckpointError, default_weights_dir, list_models, read_config
from .models import FAMILIES
from .pipeline import FacePipeline

log = logging.getLogger(__name__)

PREFERRED_DEFAULT = "dcgan-celeba64"  # the shipped model, selected first when present


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    kind: str  # "generator" (latent -> image) or "upscaler" (image -> image)
    resolution: int | None
    description: str
    path: Path


def scan(weights_dir: str | os.PathLike | None = None) -> list[ModelEntry]:
    """Every model folder with a readable config of a registered family, sorted by name.

    Folders that cannot be described (bad JSON, unknown family) are skipped with a logged warning, so one
    broken folder does not take the app down; loading such a folder by path still raises its error."""
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    entries = []
    for name in list_models(root):
        try:
            meta = read_config(root / name)
        except CheckpointError as e:
            log.warning("skipping model folder %s: %s", root / name, e)
            continue
        family = FAMILIES.get(meta.get("family"))
        if family is None:
            log.warning("skipping model folder %s: unknown family %r", root / name, meta.get("family"))
            continue
        cfg, card = meta.get("config") or {}, meta.get("card") or {}
        entries.append(ModelEntry(name, family.name, family.kind, cfg.get("resolution"),
                                  str(card.get("description", "")), root / name))
    return entries


def generators(weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the generator models (what the model dropdowns list)."""
    return [e.name for e in scan(weights_dir) if e.kind == "generator"]


def default_generator(weights_dir: str | os.PathLike | None = None) -> str | None:
    names = generators(weights_dir)
    if PREFERRED_DEFAULT in names:
        return PREFERRED_DEFAULT
    return names[0] if names else None


def describe(name: str, weights_dir: str | os.PathLike | None = None) -> ModelEntry:
    for e in scan(weights_dir):
        if e.name == name:
            return e
    raise CheckpointError(_unknown(name, weights_dir))


def _unknown(name: object, weights_dir: str | os.PathLike | None) -> str:
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    known = ", ".join(generators(root)) or f"none (put a model folder in {root} or set DGF_WEIGHTS_DIR)"
    return f"unknown model {name!r}; available: {known}"


def model_version(name: str, weights_dir: str | os.PathLike | None = None) -> int:
    """A token that changes when generator `name`'s folder is replaced (its config's mtime); checks the name."""
    if not isinstance(name, str) or name not in generators(weights_dir):
        raise CheckpointError(_unknown(name, weights_dir))
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    return (root / name / CONFIG_FILE).stat().st_mtime_ns


def load_generator(name: str, device: str = "auto", weights_dir: str | os.PathLike | None = None) -> FacePipeline:
    """A pipeline for generator `name` (one of `generators()`; never a path, so callers cannot pick files)."""
    model_version(name, weights_dir)
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    return FacePipeline.from_pretrained(root / name, device=device)


class PipelineCache:
    """Thread-safe LRU of loaded generator pipelines, keyed by (name, config mtime).

    Pipelines hold read-only models and no per-request state (see `FacePipeline`), so sharing them between
    threads, Gradio workers and Streamlit sessions is safe."""

    def __init__(self, max_models: int = 4, device: str = "auto", weights_dir: str | os.PathLike | None = None):
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.max_models, self.device, self.weights_dir = max_models, device, weights_dir
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[int, FacePipeline]] = OrderedDict()

    def get(self, name: str) -> FacePipeline:
        """The pipeline of generator `name`; CheckpointError if it is not one of `generators()`."""
        version = model_version(name, self.weights_dir)
        with self._lock:  # one load at a time: two first requests for a model do not load it twice
            hit = self._items.get(name)
            if hit is not None and hit[0] == version:
                self._items.move_to_end(name)
                return hit[1]
            pipe = load_generator(name, self.device, self.weights_dir)
            self._items[name] = (version, pipe)
            self._items.move_to_end(name)
            while len(self._items) > self.max_models:
                self._items.popitem(last=False)
            return pipe
