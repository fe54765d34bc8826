import pytest
import torch

from dgf_core.training.augment import (
    POLICIES,
    color,
    cutout,
    diff_augment,
    parse_policy,
    translation,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_parse_policy():
    assert parse_policy("") == () and parse_policy(None) == ()
    assert parse_policy(" color, cutout ") == ("color", "cutout")
    with pytest.raises(ValueError, match="unknown augmentation"):
        parse_policy("color,rotate")


def test_shapes_determinism_and_change():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    for name in POLICIES:
        a, b = diff_augment(x, name, gen(1)), diff_augment(x, name, gen(1))
        assert a.shape == x.shape and torch.equal(a, b), name
        assert not torch.equal(a, x), name  # it did something
        assert not torch.equal(a, diff_augment(x, name, gen(2))), name  # the seed matters


def test_p_zero_like_is_identity_and_gradients_flow():
    x = (torch.rand(4, 3, 8, 8) * 2 - 1).requires_grad_(True)
    y = diff_augment(x, "color,translation,cutout", gen(), p=1e-9)  # never applied
    assert torch.allclose(y, x)
    diff_augment(x, "color,translation,cutout", gen()).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_moves_content_by_whole_pixels():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = translation(x, gen())
    assert y.sum(dim=(1, 2, 3)).eq(1).all()  # a shift of at most 2 px keeps the dot inside
    pos = y[:, 0].flatten(1).argmax(1)
    dy, dx = pos // 16 - 8, pos % 16 - 8
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2 and (dy != 0).any() and (dx != 0).any()


def test_cutout_zeroes_a_quarter_at_most():
    x = torch.ones(32, 3, 16, 16)
    y = cutout(x, gen())
    zeroed = (y == 0).float().mean(dim=(1, 2, 3))
    assert zeroed.max() <= 0.25 + 1e-6 and zeroed.min() > 0
    assert ((y == 0) | (y == 1)).all()


def test_color_keeps_grey_images_grey():
    x = torch.full((8, 3, 4, 4), 0.2)
    y = color(x, gen())
    assert torch.allclose(y, y[:, :1].expand_as(y))  # saturation of grey stays grey; channels move together
