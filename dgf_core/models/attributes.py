"""A small face-attribute classifier for labelling generated faces: age and gender (trained on UTKFace), or a
set of binary labels (`labels`, e.g. CelebA's Smiling, Mouth_Slightly_Open, Narrow_Eyes).

Input: (N, 3, R, R) in [-1, 1], faces in the UTKFace chip geometry (`alignment` recipe "utkface-chip").
Output without `labels`: (N, 2): [normalized log-age, gender logit] (gender: UTKFace's coding, 1 = female).
Age in years = exp(out[:, 0] * age_std + age_mean) - 1, with the statistics stored in the config.
Output with `labels`: (N, len(labels)) logits, one per label, in that order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AttributeConfig:
    resolution: int = 32
    channels: int = 32  # first stage; doubled at each stride-2 stage
    age_mean: float = 3.2  # of log(1 + age) on the training set (set by training)
    age_std: float = 0.9
    recipe: str = "utkface-chip"  # the face geometry the classifier expects
    labels: tuple[str, ...] = ()  # binary labels (one logit each) instead of the age/gender head
    stages: int = 3  # stride-2 stages: R -> R / 2**stages before the average pool

    @property
    def n_outputs(self) -> int:
        return len(self.labels) if self.labels else 2

    def __post_init__(self) -> None:
        if self.stages < 1:
            raise ValueError(f"stages must be positive, got {self.stages}")
        if self.resolution < 16 or self.resolution % 2**self.stages:
            raise ValueError(f"resolution must be a multiple of {2**self.stages} (2**stages) >= 16, got {self.resolution}")
        if self.channels < 1:
            raise ValueError(f"channels must be positive, got {self.channels}")
        self.labels = tuple(str(x) for x in self.labels)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be distinct, got {list(self.labels)}")


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
            nn.Conv2d(c_out, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]


class AttributeNet(nn.Module):
    def __init__(self, cfg: AttributeConfig):
        super().__init__()
        self.cfg = cfg
        widths = [3] + [cfg.channels * 2**i for i in range(cfg.stages)]
        self.features = nn.Sequential(*(m for a, b in zip(widths, widths[1:]) for m in _block(a, b)))  # R -> R/2**stages
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(widths[-1], cfg.n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, R, R) in [-1, 1] -> (N, 2): normalized log-age, gender logit; with labels (N, len(labels)) logits."""
        assert x.ndim == 4 and x.shape[1:] == (3, self.cfg.resolution, self.cfg.resolution), \
            f"expected (N, 3, {self.cfg.resolution}, {self.cfg.resolution}), got {tuple(x.shape)}"
        return self.head(self.features(x).mean((2, 3)))

    def age_years(self, out: torch.Tensor) -> torch.Tensor:
        return torch.expm1(out[:, 0] * self.cfg.age_std + self.cfg.age_mean)
