"""Which models the UIs offer, and one shared cache of loaded pipelines.

The app and the Streamlit pages never hard-code model names: they ask `generators()` for the model folders
in the weights folder (`$DGF_WEIGHTS_DIR`, else `weights/`) whose family is a generator, read from each
folder's config.json (cheap: no weights are loaded). A new family (StyleGAN2, an upscaler) appears in
every dropdown as soon as it is registered in `dgf_core.models` and its folder is in `weights/`.

`upscalers()` lists the upscaler folders the same way (`default_upscaler()` is the one the UIs' upscale
option uses); `default_pair()` is what the Compare views open with; `card_metrics()` / `card_markdown()`
show what a model card says about quality and training ("not evaluated" where it says nothing); `status()` the
card's status line (a model shipped while still in training says so in every picker, `describe_line()`).

`PipelineCache` loads each generator once and hands the same read-only `FacePipeline` to every request
and thread (`UpscalerCache`: each `Upscaler`; `ModelCache(kind="projection")`: each generator as a
`LoadedModel` with its discriminator, for projecting photos). They only load names that `generators()` /
`upscalers()` list, so a UI or API caller cannot make the server open arbitrary paths. Their key includes
the config file's modification time, so a model folder replaced on disk (a newer training export) is
reloaded on the next request.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import (
    CONFIG_FILE,
    CheckpointError,
    LoadedModel,
    default_weights_dir,
    list_models,
    read_config,
)
from ..generation.pipeline import FacePipeline, pick_device
from ..generation.upscale import Upscaler
from ..models import FAMILIES

log = logging.getLogger(__name__)

PREFERRED_DEFAULT = "dcgan-celeba64"  # the shipped model, selected first when present
PREFERRED_PAIR = ("dcgan-celeba64", "stylegan2-celeba64")  # the Compare tab's default, when both are shipped
PREFERRED_UPSCALER = "upscaler-x4"
NOT_EVALUATED = "not evaluated"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    kind: str  # "generator" (latent -> image) or "upscaler" (image -> image)
    resolution: int | None
    description: str
    path: Path
    card: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the model card (config.json)


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
            if _other_dgf_format(root / name):  # the face detector, identity embedding, attribute classifier
                log.debug("not listed (not a generator or upscaler): %s", root / name)
            else:
                log.warning("skipping model folder %s: %s", root / name, e)
            continue
        family = FAMILIES.get(meta.get("family"))
        if family is None:
            log.warning("skipping model folder %s: unknown family %r", root / name, meta.get("family"))
            continue
        cfg, card = meta.get("config") or {}, meta.get("card") or {}
        entries.append(ModelEntry(name, family.name, family.kind, cfg.get("resolution"),
                                  str(card.get("description", "")), root / name, card if isinstance(card, dict) else {}))
    return entries


def _other_dgf_format(folder: Path) -> bool:
    """True for the project's other weight folders (format "dgf-<kind>/N", e.g. dgf-mtcnn/1): not models for the
    dropdowns, and nothing wrong with them."""
    try:
        fmt = json.loads((folder / CONFIG_FILE).read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(fmt, str) and fmt.startswith("dgf-") and not fmt.startswith("dgf-checkpoint/")


def generators(weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the generator models (what the model dropdowns list)."""
    return [e.name for e in scan(weights_dir) if e.kind == "generator"]


def upscalers(weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the upscaler models (image -> image, 2x or 4x)."""
    return [e.name for e in scan(weights_dir) if e.kind == "upscaler"]


def default_generator(weights_dir: str | os.PathLike | None = None) -> str | None:
    names = generators(weights_dir)
    if PREFERRED_DEFAULT in names:
        return PREFERRED_DEFAULT
    return names[0] if names else None


def default_pair(weights_dir: str | os.PathLike | None = None) -> tuple[str | None, str | None]:
    """The two generators the Compare tab opens with: the shipped DCGAN and StyleGAN2 when both are there,
    else the first two generators (the same one twice if there is only one; (None, None) if there is none)."""
    names = generators(weights_dir)
    if all(n in names for n in PREFERRED_PAIR):
        return PREFERRED_PAIR
    if not names:
        return None, None
    return names[0], names[1] if len(names) > 1 else names[0]


def default_upscaler(weights_dir: str | os.PathLike | None = None) -> str | None:
    """The upscaler the UIs use for their upscale option (None: there is none, and the option is off)."""
    names = upscalers(weights_dir)
    if PREFERRED_UPSCALER in names:
        return PREFERRED_UPSCALER
    return names[0] if names else None


def describe(name: str, weights_dir: str | os.PathLike | None = None) -> ModelEntry:
    for e in scan(weights_dir):
        if e.name == name:
            return e
    raise CheckpointError(_unknown(name, weights_dir))


def card_metrics(entry: ModelEntry) -> dict[str, str]:
    """What a model card says about quality and training, as display text; "not evaluated" (or "unknown")
    where the card lacks it. Keys: faces detected, told from real faces (the two-sample test's accuracy), share of
    women (beside the training faces'), memorization ratio, images seen (in all, across continued runs), hardware."""
    card = entry.card
    ev = card.get("evaluation") if isinstance(card.get("evaluation"), dict) else {}
    rate = _get(ev, "face_detection", "samples", "p>=0.999")
    told = _get(ev, "c2st", "samples_vs_heldout", "accuracy")
    women, women_train = _get(ev, "coverage", "samples", "female_share"), _get(ev, "coverage", "training", "female_share")
    ratio = _get(ev, "memorization", "ratio")
    seen = card.get("images_seen_total")  # a model that continued another counts what that one had seen too
    seen = seen if _is_number(seen) else card.get("images_seen")
    return {
        "faces detected (p>=0.999)": f"{rate:.1%}" if _is_number(rate) else NOT_EVALUATED,
        "told from real faces by a classifier (50%: chance)": f"{told:.1%}" if _is_number(told) else NOT_EVALUATED,
        "share of women": (f"{women:.1%}" + (f" (training faces {women_train:.1%})" if _is_number(women_train) else "")
                           if _is_number(women) else NOT_EVALUATED),
        "memorization ratio": f"{ratio:.3f}" if _is_number(ratio) else NOT_EVALUATED,
        "images seen": f"{seen:,}" if _is_number(seen) else "unknown",
        "hardware": str(card["hardware"]) if card.get("hardware") else "unknown",
    }


def status(entry: ModelEntry) -> str:
    """The card's `status` (e.g. that the model is still in training and not yet as good as its targets), or ""
    for a finished model. Every model description in the UIs shows it."""
    s = entry.card.get("status")
    return s.strip() if isinstance(s, str) else ""


def describe_line(entry: ModelEntry) -> str:
    """One line for the model pickers: family, size, description and, when the card has one, its status."""
    line, s = f"{entry.family}, {entry.resolution}×{entry.resolution}. {entry.description}", status(entry)
    return line + (f" **Status: {s}**" if s else "")


def card_markdown(entry: ModelEntry) -> str:
    """A short Markdown block naming the model and its card metrics (the Compare views show it under each image)."""
    lines = [f"**{entry.name}** ({entry.family}, {entry.resolution}×{entry.resolution})"]
    s = status(entry)
    lines += [f"- **status: {s}**"] if s else []
    lines += [f"- {k}: {v}" for k, v in card_metrics(entry).items()]
    return "\n".join(lines)


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _names(kind: str, weights_dir: str | os.PathLike | None) -> list[str]:
    return upscalers(weights_dir) if kind == "upscaler" else generators(weights_dir)  # "projection": generators


def _unknown(name: object, weights_dir: str | os.PathLike | None, kind: str = "generator") -> str:
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    known = ", ".join(_names(kind, root)) or f"none (put a model folder in {root} or set DGF_WEIGHTS_DIR)"
    return f"unknown {'upscaler' if kind == 'upscaler' else 'model'} {name!r}; available: {known}"


def model_version(name: str, weights_dir: str | os.PathLike | None = None, kind: str = "generator") -> int:
    """A token that changes when model `name`'s folder is replaced (its config's mtime); checks the name
    against the models of that kind in the weights folder."""
    names = _names(kind, weights_dir)
    if not isinstance(name, str) or name not in names:
        raise CheckpointError(_unknown(name, weights_dir, kind))
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    return (root / name / CONFIG_FILE).stat().st_mtime_ns


def load_generator(name: str, device: str = "auto", weights_dir: str | os.PathLike | None = None) -> FacePipeline:
    """A pipeline for generator `name` (one of `generators()`; never a path, so callers cannot pick files)."""
    model_version(name, weights_dir)
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    return FacePipeline.from_pretrained(root / name, device=device)


def load_upscaler(name: str, device: str = "auto", weights_dir: str | os.PathLike | None = None) -> Upscaler:
    """The `Upscaler` of upscaler model `name` (one of `upscalers()`; never a path)."""
    model_version(name, weights_dir, "upscaler")
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    return Upscaler.from_pretrained(root / name, device=device)


def load_for_projection(name: str, device: str = "auto", weights_dir: str | os.PathLike | None = None) -> LoadedModel:
    """Generator `name` as a `LoadedModel` with its discriminator when it ships one (projection's feature matching)."""
    from ..faces.projection import load_projection_model

    model_version(name, weights_dir, "projection")
    root = Path(weights_dir) if weights_dir else default_weights_dir()
    return load_projection_model(root / name, pick_device(device))


class ModelCache:
    """Thread-safe LRU of loaded models of one kind, keyed by (name, config mtime).

    What it holds (pipelines, upscalers) is read-only with no per-request state, so sharing it between
    threads, Gradio workers and Streamlit sessions is safe."""

    def __init__(self, max_models: int = 4, device: str = "auto", weights_dir: str | os.PathLike | None = None,
                 kind: str = "generator"):
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        if kind not in LOADERS:
            raise ValueError(f"unknown model kind {kind!r}; known: {sorted(LOADERS)}")
        self.max_models, self.device, self.weights_dir, self.kind = max_models, device, weights_dir, kind
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    def get(self, name: str) -> Any:
        """The loaded model `name`; CheckpointError if it is not one of the models of this kind."""
        version = model_version(name, self.weights_dir, self.kind)
        with self._lock:  # one load at a time: two first requests for a model do not load it twice
            hit = self._items.get(name)
            if hit is not None and hit[0] == version:
                self._items.move_to_end(name)
                return hit[1]
            loaded = LOADERS[self.kind](name, self.device, self.weights_dir)
            self._items[name] = (version, loaded)
            self._items.move_to_end(name)
            while len(self._items) > self.max_models:
                self._items.popitem(last=False)
            return loaded


class PipelineCache(ModelCache):
    """The generator pipelines (`FacePipeline`) shared by every request."""

    def __init__(self, max_models: int = 4, device: str = "auto", weights_dir: str | os.PathLike | None = None):
        super().__init__(max_models, device, weights_dir, "generator")

    def get(self, name: str) -> FacePipeline:
        return super().get(name)


class UpscalerCache(ModelCache):
    """The upscalers (`Upscaler`) shared by every request."""

    def __init__(self, max_models: int = 2, device: str = "auto", weights_dir: str | os.PathLike | None = None):
        super().__init__(max_models, device, weights_dir, "upscaler")

    def get(self, name: str) -> Upscaler:
        return super().get(name)


LOADERS: dict[str, Callable[[str, str, Any], Any]] = {"generator": lambda *a: load_generator(*a),
                                                      "upscaler": lambda *a: load_upscaler(*a),
                                                      "projection": lambda *a: load_for_projection(*a)}
