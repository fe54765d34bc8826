"""Likeness: verification statistics on known embeddings, identity training, save/load, the Likeness call."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dgf_core.faces.likeness import (
    load_likeness,
    read_identity_file,
    save_identity,
    train_identity,
    verify_identity,
)
from dgf_core.models.identity import IdentityConfig

torch.set_num_threads(1)


class OneHot(torch.nn.Module):
    """Embeds 'face' i as the one-hot of the identity written in its first pixel (a perfect recogniser)."""

    def forward(self, x):
        return F.one_hot(x[:, 0, 0, 0].long(), 4).float()


def test_verify_identity_on_perfect_and_random_embeddings():
    ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    faces = ids.float()[:, None, None, None].expand(8, 3, 4, 4)
    res = verify_identity(OneHot(), faces, ids)
    assert res["roc_auc"] == 1.0 and res["eer"] == 0.0 and res["n_same_pairs"] == 4 and res["n_different_pairs"] == 24
    assert res["same_person_cosine"]["mean"] == 1.0 and res["different_people_cosine"]["mean"] == 0.0

    class Random(torch.nn.Module):
        def forward(self, x):
            return F.normalize(torch.randn(len(x), 16, generator=torch.Generator().manual_seed(0)), dim=1)

    ids = torch.arange(200) // 4
    res = verify_identity(Random(), torch.zeros(200, 3, 4, 4), ids)
    assert 0.4 < res["roc_auc"] < 0.6


def test_identity_training_save_load_and_likeness(tmp_path):
    g = torch.Generator().manual_seed(0)
    cfg = IdentityConfig(resolution=16, channels=4, embed_dim=8, n_ids=3)
    faces = torch.rand(30, 3, 16, 16, generator=g) * 2 - 1
    ids = torch.arange(30) % 3
    net, card = train_identity(faces, ids, cfg=cfg, steps=3, batch_size=8)
    assert card["steps"] == 3
    like = load_likeness(save_identity(tmp_path / "id", net, card))
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    same = like(x, x, "celeba-center-crop")
    assert same.shape == (2,) and torch.allclose(same, torch.ones(2), atol=1e-5)
    assert like(x, x.flip(0), "celeba-center-crop").abs().max() <= 1.0 + 1e-6


def test_read_identity_file(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("000001.jpg 2880\n000002.jpg 2937\n")
    assert read_identity_file(p) == {"000001.jpg": 2880, "000002.jpg": 2937}
    p.write_text("nothing here\n")
    with pytest.raises(ValueError, match="no 'file identity'"):
        read_identity_file(p)
