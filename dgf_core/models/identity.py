"""A small face-identity embedding (for a likeness measure), trained on CelebA's identity labels.

Input: (N, 3, R, R) in [-1, 1], the face region (alignment recipe "utkface-chip" geometry: eyes to chin).
Output: (N, embed_dim) L2-normalised embeddings; likeness of two faces = cosine of their embeddings.
Training adds a cosine classifier over the training identities (`logits`), dropped at inference.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attributes import _block


@dataclass
class IdentityConfig:
    resolution: int = 32
    channels: int = 32
    embed_dim: int = 64
    n_ids: int = 200  # identities in the training set (the cosine classifier's classes)
    scale: float = 16.0  # cosine-softmax temperature (NormFace)
    recipe: str = "utkface-chip"

    def __post_init__(self) -> None:
        if self.resolution < 16 or self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8 >= 16, got {self.resolution}")
        for name in ("channels", "embed_dim", "n_ids"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


class IdentityNet(nn.Module):
    def __init__(self, cfg: IdentityConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.features = nn.Sequential(*_block(3, c), *_block(c, 2 * c), *_block(2 * c, 4 * c))  # R -> R/8
        self.embed = nn.Linear(4 * c * (cfg.resolution // 8) ** 2, cfg.embed_dim)
        self.classes = nn.Parameter(torch.randn(cfg.n_ids, cfg.embed_dim) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, R, R) in [-1, 1] -> (N, embed_dim), unit norm."""
        assert x.ndim == 4 and x.shape[1:] == (3, self.cfg.resolution, self.cfg.resolution), \
            f"expected (N, 3, {self.cfg.resolution}, {self.cfg.resolution}), got {tuple(x.shape)}"
        return F.normalize(self.embed(self.features(x).flatten(1)), dim=1)

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """(N, embed_dim) unit embeddings -> (N, n_ids) scaled cosines to the class centres."""
        return self.cfg.scale * emb @ F.normalize(self.classes, dim=1).t()
