"""The DCGAN's stride-2 4x4 layers: the matrix-product path against torch's convolutions (the reference)."""
import pytest
import torch
import torch.nn.functional as F

from dgf_core.models import ops
from dgf_core.models.dcgan import DCGANConfig, Discriminator, Generator

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _grads(fn, x, w):
    x, w = x.detach().requires_grad_(True), w.detach().requires_grad_(True)
    y = fn(x, w)
    y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))  # not all ones: taps must not cancel
    return y.detach(), x.grad, w.grad


def test_col2im_is_the_adjoint_of_im2col():
    x = torch.randn(3, 5, 6, 4, dtype=torch.float64)
    cols = torch.randn(3 * 3 * 2, 16 * 5, dtype=torch.float64)
    assert ops.im2col(x).shape == cols.shape
    assert torch.allclose((ops.im2col(x) * cols).sum(), (x * ops.col2im(cols, x.shape)).sum())


def test_matmul_convolutions_equal_torch_in_float64():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 6, 4, dtype=torch.float64)
    w = torch.randn(7, 5, 4, 4, dtype=torch.float64)
    for got, want in zip(_grads(ops._Conv4s2.apply, x, w), _grads(lambda a, b: F.conv2d(a, b, stride=2, padding=1), x, w)):
        assert torch.allclose(got, want, atol=1e-10)
    wt = torch.randn(5, 7, 4, 4, dtype=torch.float64)
    ref = _grads(lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1), x, wt)
    for got, want in zip(_grads(ops._ConvTranspose4s2.apply, x, wt), ref):
        assert torch.allclose(got, want, atol=1e-10)
    assert ref[0].shape == (3, 7, 12, 8)


def test_gradcheck():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops._Conv4s2.apply, (x, torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)))
    assert torch.autograd.gradcheck(ops._ConvTranspose4s2.apply, (x, torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)))


def _path(module, x, autocast: bool) -> str:
    with torch.autocast(**BF16, enabled=autocast):
        return type(module(x.requires_grad_(True)).grad_fn).__name__


def test_auto_takes_the_matmul_path_only_for_small_images_under_bf16_autocast():
    conv, convt = ops.Conv4s2(4, 8), ops.ConvTranspose4s2(4, 8)
    small, large = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 16, 16)
    assert _path(conv, small, True) == "_Conv4s2Backward" and _path(convt, small, True) == "_ConvTranspose4s2Backward"
    assert "_Conv4s2" not in _path(conv, large, True) and "4s2" not in _path(convt, large, True)
    assert "4s2" not in _path(conv, small, False) and "4s2" not in _path(convt, small, False)  # fp32: torch's
    conv.impl, convt.impl = "ref", "ref"
    assert "4s2" not in _path(conv, small, True) and "4s2" not in _path(convt, small, True)
    conv.impl = "matmul"
    assert _path(conv, large, False) == "_Conv4s2Backward"


def test_matmul_output_is_dense_channels_last():
    """Batch norm after these layers is several times slower on a cropped, strided view."""
    with torch.autocast(**BF16):
        y = ops._ConvTranspose4s2.apply(torch.randn(2, 4, 4, 4), torch.randn(4, 3, 4, 4))
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)


def test_bad_impl_and_odd_sides():
    with pytest.raises(ValueError, match="impl must be one of"):
        ops.Conv4s2(3, 4, impl="fast")
    odd = torch.randn(1, 3, 7, 7)
    with torch.autocast(**BF16):  # auto: torch's path, whose output sides round down
        assert ops.Conv4s2(3, 4)(odd).shape == (1, 4, 3, 3)
    with pytest.raises(ValueError, match="even H and W"):
        ops.Conv4s2(3, 4, impl="matmul")(odd)


def _set_impl(model, impl):
    for m in model.modules():
        if isinstance(m, (ops.Conv4s2, ops.ConvTranspose4s2)):
            m.impl = impl


def test_dcgan_trains_the_same_on_both_paths_under_bf16():
    """A bf16 training step's losses and gradients through G and D match the reference path within bf16 rounding."""
    torch.manual_seed(0)
    cfg = DCGANConfig(resolution=16, g_channels=16, d_channels=16)
    g, d = Generator(cfg), Discriminator(cfg)
    z = torch.randn(8, cfg.z_dim)

    def step(impl):
        _set_impl(g, impl), _set_impl(d, impl)
        g.zero_grad(), d.zero_grad()
        with torch.autocast(**BF16):
            logits = d(g(z))
        logits.float().mean().backward()
        return logits.float(), torch.cat([p.grad.flatten() for p in [*g.parameters(), *d.parameters()]])

    (ref_logits, ref_grads), (mm_logits, mm_grads) = step("ref"), step("matmul")
    assert torch.allclose(mm_logits, ref_logits, atol=0.05, rtol=0.05)
    cos = F.cosine_similarity(mm_grads, ref_grads, dim=0)
    assert cos > 0.99, cos
    assert not torch.equal(mm_grads, ref_grads)  # the two paths did run different code


def test_state_dict_keys_are_torchs():
    """Shipped checkpoints were written by nn.Conv2d / nn.ConvTranspose2d layers and must keep loading."""
    cfg = DCGANConfig(resolution=16, g_channels=4, d_channels=4)
    assert set(Generator(cfg).state_dict()) == {"main.0.weight", "main.1.weight", "main.1.bias", "main.1.running_mean",
                                                "main.1.running_var", "main.1.num_batches_tracked", "main.3.weight",
                                                "main.4.weight", "main.4.bias", "main.4.running_mean",
                                                "main.4.running_var", "main.4.num_batches_tracked", "main.6.weight"}
