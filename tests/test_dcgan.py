import pytest
import torch
from torch import nn

from dgf_core.models.dcgan import DCGANConfig, Discriminator, Generator, fuse_generator


@pytest.mark.parametrize("res", [8, 16, 64])
def test_shapes(res):
    cfg = DCGANConfig(resolution=res, g_channels=8, d_channels=8)
    g, d = Generator(cfg), Discriminator(cfg)
    x = g(torch.randn(3, cfg.z_dim))
    assert x.shape == (3, 3, res, res)
    assert x.abs().max() <= 1.0  # tanh output
    assert d(x).shape == (3,)


def test_paper_architecture_64():
    cfg = DCGANConfig()
    g, d = Generator(cfg), Discriminator(cfg)
    convt = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in convt] == [512, 256, 128, 64, 3]
    assert isinstance(g.main[-1], nn.Tanh) and not any(isinstance(m, nn.Linear) for m in g.modules())
    # batch norm everywhere except G's output layer and D's input layer
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 4
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3
    assert not isinstance(d.features[1], nn.BatchNorm2d)
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert any(isinstance(m, nn.ReLU) for m in g.modules())
    w = torch.cat([m.weight.flatten() for m in convt])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.001


def test_128_adds_a_stage():
    cfg = DCGANConfig(resolution=128, g_channels=4, d_channels=4)
    assert cfg.n_stages == 5
    assert Generator(cfg)(torch.randn(1, 100)).shape == (1, 3, 128, 128)


@pytest.mark.parametrize("bad", [dict(resolution=48), dict(resolution=4), dict(z_dim=0)])
def test_bad_config(bad):
    with pytest.raises(ValueError):
        DCGANConfig(**bad)


def test_fused_fast_path_matches_reference():
    torch.manual_seed(0)
    cfg = DCGANConfig(resolution=16, g_channels=8, z_dim=16)
    g = Generator(cfg).train()
    with torch.no_grad():
        g(torch.randn(64, 16))  # non-trivial running statistics
    g.eval()
    z = torch.randn(5, 16)
    with torch.no_grad():
        ref = g(z)
        fast = g.inference_module()(z)
        fused = fuse_generator(g)(z[:, :, None, None])
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=1e-4)
