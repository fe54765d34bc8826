"""A likeness measure built offline: a small identity embedding trained on CelebA's identity labels.

`train_identity` learns a `models/identity.py` embedding with a cosine-softmax classifier over the training
identities (CelebA's `identity_CelebA.txt`: here 200 identities x 30 images, the held-out files of the same
identities kept out, `data.is_heldout`). `verify_identity` reports, on held-out images, the cosine
similarity of same-person pairs vs different-person pairs, the ROC AUC and the equal-error rate: that is
the baseline against which a projection's likeness (cosine between the photo and its reconstruction) reads.
Faces enter in the model's crop geometry (CelebA centre crop, 64x64) and are warped to the face region
(`edits.recipe_warp`) at the embedding's resolution.

Limits (also on the card): 200 celebrities, 32x32 faces, trained in minutes on a CPU: it is a coarse
likeness signal for comparing projections and edits, far from a face-recognition system; it must not be
used to identify anyone.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_net, save_net
from ..models.identity import IdentityConfig, IdentityNet
from .edits import _augment, fit_on_cpu_budget, recipe_warp

IDENTITY_FORMAT = "dgf-identity/1"
DEFAULT_LIKENESS = "identity-celeba200"  # folder in the weights folder


def read_identity_file(path: str | os.PathLike) -> dict[str, int]:
    """CelebA's identity_CelebA.txt: 'file.jpg identity' per line -> {file name: identity}."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    if not out:
        raise ValueError(f"{path} holds no 'file identity' lines")
    return out


def to_face_region(images: torch.Tensor, recipe: str, cfg: IdentityConfig) -> torch.Tensor:
    """(N, 3, R, R) in [-1, 1] in `recipe`'s crop geometry -> (N, 3, r, r) face region the embedding reads."""
    return recipe_warp(images.float(), recipe, cfg.recipe, cfg.resolution)


def train_identity(faces: torch.Tensor, ids: torch.Tensor, *, cfg: IdentityConfig | None = None, steps: int = 3000,
                   minutes: float | None = None, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                   log: Callable[[str], None] | None = None) -> tuple[IdentityNet, dict[str, Any]]:
    """faces: (N, 3, r, r) in [-1, 1] already in the embedding's face region; ids: (N,) in 0..n_ids-1.
    Stops at `steps` or after `minutes` of this process's CPU time."""
    cfg = cfg or IdentityConfig(n_ids=int(ids.max()) + 1)
    assert faces.shape[1:] == (3, cfg.resolution, cfg.resolution), tuple(faces.shape)
    torch.manual_seed(seed)
    net = IdentityNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(faces), (batch_size,), generator=g)
        return F.cross_entropy(net.logits(net(_augment(faces[idx], g))), ids[idx])

    card = fit_on_cpu_budget(net, opt, batch_loss, steps=steps, minutes=minutes, lr=lr, log=log, loss_digits=3)
    return net, {**card, "n_train": len(faces), "n_ids": cfg.n_ids}


@torch.no_grad()
def verify_identity(net: IdentityNet, faces: torch.Tensor, ids: torch.Tensor) -> dict[str, Any]:
    """Same-person vs different-person cosine similarity over all pairs of held-out faces (face region)."""
    emb = net(faces)
    sim = emb @ emb.t()
    iu = torch.triu_indices(len(ids), len(ids), 1)
    s = sim[iu[0], iu[1]]
    same = ids[iu[0]] == ids[iu[1]]
    pos, neg = s[same].double(), s[~same].double()
    order = torch.argsort(torch.cat([pos, neg]))
    ranks = torch.empty(len(order), dtype=torch.float64)
    ranks[order] = torch.arange(1, len(order) + 1, dtype=torch.float64)
    auc = float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
    thr = torch.linspace(-1, 1, 401, dtype=torch.float64)
    far = (neg[None] >= thr[:, None]).double().mean(1)
    frr = (pos[None] < thr[:, None]).double().mean(1)
    i = int((far - frr).abs().argmin())
    return {"n_faces": len(ids), "n_same_pairs": len(pos), "n_different_pairs": len(neg),
            "same_person_cosine": {"mean": round(float(pos.mean()), 4), "median": round(float(pos.median()), 4)},
            "different_people_cosine": {"mean": round(float(neg.mean()), 4), "median": round(float(neg.median()), 4)},
            "roc_auc": round(auc, 4), "eer": round(float((far[i] + frr[i]) / 2), 4), "eer_threshold": round(float(thr[i]), 3)}


class Likeness:
    """likeness(a, b) = cosine similarity of identity embeddings of two batches of faces in `recipe` geometry."""

    def __init__(self, net: IdentityNet, card: dict[str, Any], sha256: str = ""):
        self.net, self.card, self.sha256 = net, card, sha256

    @torch.no_grad()
    def embed(self, images: torch.Tensor, recipe: str) -> torch.Tensor:
        """(N, 3, R, R) in [-1, 1] -> (N, embed_dim)."""
        return self.net(to_face_region(images.clamp(-1, 1), recipe, self.net.cfg))

    def __call__(self, a: torch.Tensor, b: torch.Tensor, recipe: str) -> torch.Tensor:
        """(N, 3, R, R) pairs -> (N,) cosine in [-1, 1]."""
        return (self.embed(a, recipe) * self.embed(b, recipe)).sum(1)


def save_identity(folder: str | os.PathLike, net: IdentityNet, card: dict[str, Any]) -> Path:
    return save_net(folder, net, IDENTITY_FORMAT, card)


def load_likeness(folder: str | os.PathLike, device: str | torch.device = "cpu") -> Likeness:
    return Likeness(*load_net(folder, IDENTITY_FORMAT, IdentityConfig, IdentityNet, device))


def default_likeness(weights_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Likeness | None:
    """The weights folder's identity embedding (identity loss of pivotal tuning, likeness figures), or None
    when the folder has none."""
    from ..checkpoint import default_weights_dir

    folder = Path(weights_dir or default_weights_dir()) / DEFAULT_LIKENESS
    return load_likeness(folder, device) if (folder / "config.json").is_file() else None


def face_regions_from_files(paths, recipe_side: int, cfg: IdentityConfig) -> torch.Tensor:
    """Image files -> their training-style crops (data.center_crop_resize at recipe_side) -> face regions."""
    from ..data import load_image

    arrs = [load_image(p, recipe_side) for p in paths]
    if any(a is None for a in arrs):
        raise ValueError("some identity images could not be decoded")
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    from .alignment import DEFAULT_RECIPE

    return torch.cat([to_face_region(x[i : i + 512], DEFAULT_RECIPE, cfg) for i in range(0, len(x), 512)])
