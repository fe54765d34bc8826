"""Stride-2 4x4 convolutions (padding 1), the DCGAN's only resampling layers, as one matrix product each way.

On CPUs, oneDNN runs the bf16 weight gradients of these convolutions at a fraction of a matrix product's speed
where the image is small and the channels many: D's last strided convolution (256 -> 512 channels on 8x8) took
206 ms forward + backward at batch 128 on 2 threads, G's first upsampling (512 -> 256 on 4x4) 183 ms; as an
im2col gather + one bf16 matrix product (+ the adjoint scatter in the backward) they take 55 and 33 ms
(2026-12-06, Intel Xeon with AMX). On larger images with fewer channels the gather costs more than it saves,
so the layers take this path only for input sides up to MATMUL_MAX_SIDE, under bf16 autocast on the CPU; everywhere else
(CUDA, fp32, eval sampling) they are the plain nn.Conv2d / nn.ConvTranspose2d, the reference that tests
compare against. Parameters and state-dict keys are those of the torch modules.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.amp import custom_bwd, custom_fwd

MATMUL_MAX_SIDE = 8  # input sides up to this use the matrix-product path (64x64 DCGAN: D's 8x8, G's 4x4)
IMPLS = ("auto", "ref", "matmul")


def im2col(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W), H and W even -> (N * H/2 * W/2, 16 * C): row (n, i, j) holds the 4x4 window of the
    zero-padded image at (2i, 2j), ordered (tap row u, tap column v, channel c)."""
    n, c, h, w = x.shape
    padded = x.new_zeros(n, h + 2, w + 2, c)  # NHWC, so each tap reads C contiguous values
    padded[:, 1:-1, 1:-1] = x.permute(0, 2, 3, 1)
    s_n, s_h, s_w, _ = padded.stride()
    windows = padded.as_strided((n, h // 2, w // 2, 4, 4, c), (s_n, 2 * s_h, 2 * s_w, s_h, s_w, 1))
    return windows.reshape(n * (h // 2) * (w // 2), 16 * c)


def col2im(cols: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """The adjoint of im2col: (N * H/2 * W/2, 16 * C) -> (N, C, H, W) (channels_last), each window added back
    where it was read. Tap u = 2p + a lands on padded row 2(i + p) + a, so the 16 taps are 4 shifted adds."""
    n, c, h, w = shape
    ho, wo = h // 2, w // 2
    padded = cols.new_zeros(n, ho + 1, 2, wo + 1, 2, c)  # padded rows as (row pair, parity)
    taps = cols.view(n, ho, wo, 2, 2, 2, 2, c)  # (n, i, j, p, a, q, b, c)
    for p in range(2):
        for q in range(2):
            padded[:, p:p + ho, :, q:q + wo] += taps[:, :, :, p, :, q].permute(0, 1, 3, 2, 4, 5)
    # dense channels_last: the cropped view would send batch norm and activations to their slow strided paths
    return padded.view(n, h + 2, w + 2, c)[:, 1:-1, 1:-1].permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


class _Conv4s2(torch.autograd.Function):
    """conv2d(x, weight, stride=2, padding=1) for a (O, C, 4, 4) weight, as im2col(x) @ weight."""

    @staticmethod
    @custom_fwd(device_type="cpu", cast_inputs=torch.bfloat16)
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        out = weight.shape[0]
        cols = im2col(x)
        w2 = weight.permute(0, 2, 3, 1).reshape(out, 16 * c)  # (O, u v c)
        ctx.save_for_backward(cols, w2)
        ctx.shape = (n, c, h, w)
        y = torch.empty((n, out, h // 2, w // 2), dtype=cols.dtype, device=cols.device,  # not a view: D's first
                        memory_format=torch.channels_last)
        torch.mm(cols, w2.t(), out=y.permute(0, 2, 3, 1).view(-1, out))  # layer's LeakyReLU works in place on it
        return y

    @staticmethod
    @custom_bwd(device_type="cpu")
    def backward(ctx, grad: torch.Tensor):
        cols, w2 = ctx.saved_tensors
        out, c = w2.shape[0], ctx.shape[1]
        g = grad.permute(0, 2, 3, 1).reshape(-1, out).to(cols.dtype)
        dx = col2im(g @ w2, ctx.shape) if ctx.needs_input_grad[0] else None
        dw = (g.t() @ cols).view(out, 4, 4, c).permute(0, 3, 1, 2) if ctx.needs_input_grad[1] else None
        return dx, dw


class _ConvTranspose4s2(torch.autograd.Function):
    """conv_transpose2d(x, weight, stride=2, padding=1) for a (C, O, 4, 4) weight, as col2im(x @ weight)."""

    @staticmethod
    @custom_fwd(device_type="cpu", cast_inputs=torch.bfloat16)
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        out = weight.shape[1]
        flat = x.permute(0, 2, 3, 1).reshape(-1, c)
        w2 = weight.permute(0, 2, 3, 1).reshape(c, 16 * out)  # (C, u v o)
        ctx.save_for_backward(flat, w2)
        ctx.shape = (n, c, h, w)
        return col2im(flat @ w2, (n, out, 2 * h, 2 * w))

    @staticmethod
    @custom_bwd(device_type="cpu")
    def backward(ctx, grad: torch.Tensor):
        flat, w2 = ctx.saved_tensors
        n, c, h, w = ctx.shape
        cols = im2col(grad.to(flat.dtype))  # (N H W, u v o)
        dx = (cols @ w2.t()).view(n, h, w, c).permute(0, 3, 1, 2) if ctx.needs_input_grad[0] else None
        dw = (flat.t() @ cols).view(c, 4, 4, -1).permute(0, 3, 1, 2) if ctx.needs_input_grad[1] else None
        return dx, dw


def _wants_matmul(impl: str, x: torch.Tensor) -> bool:
    even = x.ndim == 4 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0  # im2col's windows tile even sides only
    if impl == "matmul":
        if not even:
            raise ValueError(f"the matrix-product path needs (N, C, H, W) with even H and W, got {tuple(x.shape)}")
        return True
    return (impl == "auto" and even and x.device.type == "cpu" and max(x.shape[-2:]) <= MATMUL_MAX_SIDE
            and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def _check(impl: str) -> str:
    """The constructors fix the geometry (4x4, stride 2, padding 1, no bias); only the path is a choice."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


class Conv4s2(nn.Conv2d):
    """nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False) that takes the matrix-product path where it is faster
    (impl 'auto', see the module docstring); 'ref' is always the torch module, 'matmul' always the other."""

    def __init__(self, c_in: int, c_out: int, impl: str = "auto"):
        super().__init__(c_in, c_out, 4, 2, 1, bias=False)
        self.impl = _check(impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _wants_matmul(self.impl, x):
            return _Conv4s2.apply(x, self.weight)
        return super().forward(x)


class ConvTranspose4s2(nn.ConvTranspose2d):
    """nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False) with the same choice of paths as Conv4s2."""

    def __init__(self, c_in: int, c_out: int, impl: str = "auto"):
        super().__init__(c_in, c_out, 4, 2, 1, bias=False)
        self.impl = _check(impl)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is None and _wants_matmul(self.impl, x):
            return _ConvTranspose4s2.apply(x, self.weight)
        return super().forward(x, output_size)
