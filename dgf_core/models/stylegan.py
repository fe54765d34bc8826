"""StyleGAN2 (Karras et al., 2020, arXiv:1912.04958) in pure PyTorch: runs on the CPU, no custom kernels.

Generator: mapping network (pixel norm + MLP with a 0.01 learning-rate multiplier) z -> w; a learned
constant 4x4 input; per layer a modulated + demodulated 3x3 convolution, a noise input with a learned
strength, bias and leaky ReLU; skip ToRGB outputs (1x1 modulated, no demodulation) summed across
resolutions after FIR upsampling ([1, 3, 3, 1]). Discriminator: residual ("resnet") D with blurred
downsampling, minibatch standard deviation and a two-layer head. Losses (non-saturating logistic, lazy
R1) and the generator EMA live in `dgf_core.training.losses` / `dgf_core.training.loop`.

Equalized learning rate as in the paper: weights are stored N(0, 1) (divided by the lr multiplier) and
scaled at run time by lr_mul / sqrt(fan_in), so Adam's effective step on the mapping network is
lr * 0.01 without separate parameter groups. The parameterization (and the order of the style vectors)
is the one rosinality/stylegan2-pytorch uses, so `dgf_core.official` loads its checkpoints by renaming
and reshaping tensors only.

Layer / w index layout (n_ws = 2 * log2(R) - 2, 10 at 64x64): synthesis conv j uses ws[:, j]
(j = 0 is the 4x4 conv, then an upsampling conv and a conv per resolution); ToRGB k (k = 0 at 4x4) uses
ws[:, 2k + 1]. Style mixing with crossover c takes ws[:, :c] from one latent and ws[:, c:] from another.

Noise: training draws fresh noise (from an explicit torch.Generator when given); inference is deterministic, so a
seed names one image: the config's `inference_noise` picks the fixed per-layer buffers (`noise_const`, StyleGAN's
'const' noise mode, the default) or no noise ("none").
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..latent import truncate

SQRT2 = math.sqrt(2.0)
BLUR_KERNEL = (1.0, 3.0, 3.0, 1.0)
NOISE_MODES = ("const", "random", "none")
INFERENCE_NOISE = ("const", "none")  # deterministic modes: a seed names one image
IMPLS = ("fast", "ref")


@dataclass
class StyleGAN2Config:
    resolution: int = 64  # output side, a power of two >= 8
    z_dim: int = 256
    w_dim: int = 256
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01  # the paper's 100x smaller learning rate for the mapping network
    channel_base: int = 4096  # G's channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 256
    d_channel_base: int = 4096  # same rule for D
    d_channel_max: int = 256
    img_channels: int = 3
    mixing_prob: float = 0.9  # style-mixing regularization during training
    mbstd_group: int = 4  # minibatch-stddev group size in D
    # noise at inference (training always draws fresh noise): "const", the per-layer buffers (StyleGAN's 'const'
    # mode), or "none". Either way a seed names one image and a walk is smooth; but a const buffer is one fixed
    # pattern in every sample, which a classifier learns to spot (C2ST of the 2026-12-03 weights: 0.878 const,
    # 0.795 none, 0.793 fresh random noise per sample; 1,000 samples against held-out faces)
    inference_noise: str = "const"

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise ValueError(f"StyleGAN2 resolution must be a power of two >= 8, got {r}")
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "d_channel_base",
                     "d_channel_max", "img_channels", "mbstd_group"):
            if getattr(self, name) < 1:
                raise ValueError(f"StyleGAN2 {name} must be positive, got {getattr(self, name)}")
        if not self.mapping_lr_mul > 0:
            raise ValueError(f"StyleGAN2 mapping_lr_mul must be positive, got {self.mapping_lr_mul}")
        if not 0.0 <= self.mixing_prob <= 1.0:
            raise ValueError(f"StyleGAN2 mixing_prob must be in [0, 1], got {self.mixing_prob}")
        if self.inference_noise not in INFERENCE_NOISE:
            raise ValueError(f"StyleGAN2 inference_noise must be one of {INFERENCE_NOISE}, got {self.inference_noise!r}")

    @property
    def log2_res(self) -> int:
        return self.resolution.bit_length() - 1

    @property
    def n_ws(self) -> int:
        """Number of style vectors (w per layer) the synthesis network takes: 10 at 64x64."""
        return 2 * self.log2_res - 2

    @property
    def n_conv_layers(self) -> int:
        return 2 * (self.log2_res - 2) + 1

    def g_channels(self, res: int) -> int:
        return max(1, min(self.channel_base // res, self.channel_max))

    def d_channels(self, res: int) -> int:
        return max(1, min(self.d_channel_base // res, self.d_channel_max))


# ---- building blocks ------------------------------------------------------------------------------------

def make_kernel(k=BLUR_KERNEL) -> torch.Tensor:
    """1-D taps -> normalized 2-D separable FIR kernel (sums to 1)."""
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def depthwise(kernel: torch.Tensor, channels: int) -> torch.Tensor:
    """FIR kernel (kh, kw) -> flipped depthwise conv weight (C, 1, kh, kw): conv2d with it is a true convolution."""
    return kernel.flip([0, 1])[None, None].repeat(channels, 1, 1, 1)


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter, downsample (NVIDIA's upfirdn2d), per channel.

    x: (N, C, H, W); kernel: (kh, kw), or already `depthwise(kernel, C)`; pad (p0, p1) applied to both axes
    (negative crops). Returns (N, C, (H*up + p0 + p1 - kh) // down + 1, ...).
    """
    n, c, h, w = x.shape
    weight = kernel if kernel.ndim == 4 else depthwise(kernel, c)
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
    x = F.conv2d(x, weight.to(x.dtype), groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


class Blur(nn.Module):
    """FIR filter of `channels` channels with padding; gain up**2 when it follows an upsampling by `up`."""

    def __init__(self, channels: int, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", depthwise(make_kernel() * gain, channels), persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample2x(nn.Module):
    """x2 FIR upsampling of the RGB skip: (N, C, H, W) -> (N, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("kernel", depthwise(make_kernel() * 4, channels), persistent=False)
        p = len(BLUR_KERNEL) - 2
        self.pad = ((p + 1) // 2 + 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=2, pad=self.pad)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate; optional fused bias + leaky ReLU (gain sqrt 2)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, in_dim) -> (N, out_dim)."""
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + self.bias * self.lr_mul, 0.2) * SQRT2
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class MappingNetwork(nn.Module):
    """z (N, z_dim) -> w (N, w_dim): pixel norm then `n` equalized linear layers with leaky ReLU."""

    def __init__(self, z_dim: int, w_dim: int, n: int, lr_mul: float):
        super().__init__()
        dims = [z_dim] + [w_dim] * n
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, activate=True) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = layer(x)
        return x


class ModulatedConv2d(nn.Module):
    """Modulated (and optionally demodulated) convolution, optionally followed by x2 upsampling.

    Two implementations of the same function:
    - "fast": scale the input channels by the style, run one ordinary convolution for the whole batch,
      scale the output channels by the demodulation factor (no per-sample weights, no grouped conv);
    - "ref": the paper's formulation: per-sample modulated/demodulated weights, grouped convolution.
    Upsampling is a stride-2 transposed convolution followed by a [1,3,3,1] blur in both.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.in_ch, self.out_ch, self.k, self.up, self.demodulate = in_ch, out_ch, kernel, up, demodulate
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)  # w -> per-input-channel style
        if up:
            p = (len(BLUR_KERNEL) - 2) - (kernel - 1)
            self.blur = Blur(out_ch, ((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)
        self._cache: tuple | None = None  # inference-only memo of weight-derived tensors, see _derived

    def forward(self, x: torch.Tensor, w: torch.Tensor, impl: str = "fast") -> torch.Tensor:
        """x: (N, in_ch, H, W), w: (N, w_dim) -> (N, out_ch, H', W') with H' = 2H if up else H."""
        assert x.ndim == 4 and x.shape[1] == self.in_ch, f"expected (N, {self.in_ch}, H, W), got {tuple(x.shape)}"
        s = self.affine(w)  # (N, in_ch)
        if impl == "ref":
            return self._grouped(x, s, self.weight * self.scale)
        if impl != "fast":
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        # the equalized-lr scale rides on the style, so the stored weight is used as is
        x = x * (s * self.scale)[:, :, None, None].to(x.dtype)
        weight, w2 = self._derived()
        if self.up:
            out = self.blur(F.conv_transpose2d(x, weight.to(x.dtype), stride=2))
        else:
            out = F.conv2d(x, weight.to(x.dtype), padding=self.k // 2)
        if self.demodulate:
            # sum_{i,kh,kw} (c w[o,i,kh,kw] s[n,i])^2 = c^2 sum_i s[n,i]^2 sum_{kh,kw} w[o,i,kh,kw]^2
            d = torch.rsqrt(s.square() @ w2 * self.scale**2 + 1e-8)  # (N, out)
            out = out * d[:, :, None, None].to(out.dtype)
        return out

    def _derived(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(conv weight in the layout F.conv* wants, sum over taps of weight^2 as (in, out)).

        Pure functions of `weight`. Without autograd (sampling) they are memoized, keyed by the weight's
        storage and version counter, so any in-place update (optimizer, EMA, load_state_dict, .to())
        invalidates them; with autograd they are recomputed every call.
        """
        wt = self.weight
        if torch.is_grad_enabled():
            return (wt.transpose(0, 1) if self.up else wt), wt.square().sum([2, 3]).t()
        key = (wt.data_ptr(), wt._version, wt.dtype, wt.device)
        cache = self._cache
        if cache is None or cache[0] != key:
            with torch.no_grad():
                conv_w = wt.transpose(0, 1).contiguous() if self.up else wt
                cache = (key, conv_w, torch.linalg.vector_norm(wt, dim=(2, 3)).square().t().contiguous())
            self._cache = cache  # one attribute store: concurrent callers at worst compute it twice
        return cache[1], cache[2]

    def _grouped(self, x: torch.Tensor, s: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        n, c, h, w_ = x.shape
        wt = weight[None] * s[:, None, :, None, None]  # (N, out, in, k, k)
        if self.demodulate:
            wt = wt * torch.rsqrt(wt.square().sum([2, 3, 4]) + 1e-8)[:, :, None, None, None]
        x = x.reshape(1, n * c, h, w_)
        if self.up:
            wt = wt.transpose(1, 2).reshape(n * c, self.out_ch, self.k, self.k)
            out = F.conv_transpose2d(x, wt, stride=2, groups=n)
            return self.blur(out.reshape(n, self.out_ch, *out.shape[2:]))
        out = F.conv2d(x, wt.reshape(n * self.out_ch, c, self.k, self.k), padding=self.k // 2, groups=n)
        return out.reshape(n, self.out_ch, *out.shape[2:])


class StyledConv(nn.Module):
    """Modulated conv -> + noise * strength -> + bias -> leaky ReLU (gain sqrt 2)."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, res: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("noise_const", torch.randn(1, 1, res, res))  # inference noise ('const' mode)
        self.res = res

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: str = "const", noise_generator: torch.Generator | None = None,
                impl: str = "fast") -> torch.Tensor:
        out = self.conv(x, w, impl)  # (N, out, res, res)
        if noise == "const":
            out = out + (self.noise_strength * self.noise_const).to(out.dtype)
        elif noise == "random":
            n = torch.randn(out.shape[0], 1, self.res, self.res, generator=noise_generator, device=out.device, dtype=out.dtype)
            out = out + self.noise_strength.to(out.dtype) * n
        elif noise != "none":
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
        return F.leaky_relu(out + self.bias[:, None, None].to(out.dtype), 0.2) * SQRT2


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) + bias: features (N, C, H, W) -> RGB (N, 3, H, W)."""

    def __init__(self, in_ch: int, w_dim: int, img_channels: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, impl: str = "fast") -> torch.Tensor:
        return self.conv(x, w, impl) + self.bias[:, None, None].to(x.dtype)


# ---- generator ------------------------------------------------------------------------------------------

class Generator(nn.Module):
    accepts_noise_generator = True  # train.py passes the step's torch.Generator for noise and mixing

    def __init__(self, cfg: StyleGAN2Config):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.mapping_lr_mul)
        c4 = cfg.g_channels(4)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4))
        layers = [StyledConv(c4, c4, cfg.w_dim, 4)]
        to_rgbs = [ToRGB(c4, cfg.w_dim, cfg.img_channels)]
        in_ch = c4
        for log_res in range(3, cfg.log2_res + 1):
            res = 2**log_res
            out_ch = cfg.g_channels(res)
            layers += [StyledConv(in_ch, out_ch, cfg.w_dim, res, up=True), StyledConv(out_ch, out_ch, cfg.w_dim, res)]
            to_rgbs.append(ToRGB(out_ch, cfg.w_dim, cfg.img_channels))
            in_ch = out_ch
        self.layers = nn.ModuleList(layers)
        self.to_rgbs = nn.ModuleList(to_rgbs)
        self.upsample = Upsample2x(cfg.img_channels)
        self.register_buffer("mean_w", torch.zeros(cfg.w_dim))  # truncation centre; set by estimate_mean_w
        assert len(self.layers) == cfg.n_conv_layers

    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    @property
    def n_ws(self) -> int:
        return self.cfg.n_ws

    def synthesis(self, ws: torch.Tensor, noise: str | None = None, noise_generator: torch.Generator | None = None,
                  impl: str = "fast") -> torch.Tensor:
        """ws: (N, n_ws, w_dim) -> images (N, C, R, R) (about [-1, 1]; not clamped). noise: one of NOISE_MODES;
        None: the model's deterministic `inference_noise`."""
        noise = self.cfg.inference_noise if noise is None else noise
        assert ws.ndim == 3 and ws.shape[1:] == (self.n_ws, self.cfg.w_dim), \
            f"expected (N, {self.n_ws}, {self.cfg.w_dim}), got {tuple(ws.shape)}"
        x = self.const.expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        x = self.layers[0](x, ws[:, 0], noise, noise_generator, impl)
        img = self.to_rgbs[0](x, ws[:, 1], impl)
        for k, to_rgb in enumerate(self.to_rgbs[1:], start=1):
            x = self.layers[2 * k - 1](x, ws[:, 2 * k - 1], noise, noise_generator, impl)
            x = self.layers[2 * k](x, ws[:, 2 * k], noise, noise_generator, impl)
            img = self.upsample(img) + to_rgb(x, ws[:, 2 * k + 1], impl)
        return img

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        """w: (N, w_dim) -> ws: (N, n_ws, w_dim), the same w for every layer."""
        return w[:, None, :].expand(-1, self.n_ws, -1)

    def mapped(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """z: (N, z_dim) -> w: (N, w_dim), truncated towards `mean_w` by psi (1: none, 0: the mean w)."""
        assert z.ndim == 2 and z.shape[1] == self.cfg.z_dim, f"expected (N, {self.cfg.z_dim}), got {tuple(z.shape)}"
        return truncate(self.mapping(z), psi, self.mean_w.to(z.dtype))

    def forward(self, z: torch.Tensor, noise_generator: torch.Generator | None = None) -> torch.Tensor:
        """z: (N, z_dim) -> images (N, C, R, R). Training mode: random noise and style-mixing regularization
        (randomness from `noise_generator`); eval mode: deterministic (`inference_noise`, no mixing)."""
        w = self.mapped(z)
        if not self.training:
            return self.synthesis(self.broadcast(w))
        ws = self.broadcast(w)
        if self.cfg.mixing_prob > 0:
            n, dev = z.shape[0], z.device
            w2 = self.mapping(torch.randn(z.shape, generator=noise_generator, device=dev, dtype=z.dtype))
            cut = torch.randint(1, self.n_ws, (n,), generator=noise_generator, device=dev)
            use = torch.rand(n, generator=noise_generator, device=dev) < self.cfg.mixing_prob
            cut = torch.where(use, cut, torch.full_like(cut, self.n_ws))
            first = torch.arange(self.n_ws, device=dev)[None, :] < cut[:, None]  # (N, n_ws): True -> w
            ws = torch.where(first[:, :, None], ws, w2[:, None, :])
        return self.synthesis(ws, "random", noise_generator)

    def truncated(self, z: torch.Tensor, psi: float) -> torch.Tensor:
        """Pipeline hook: truncation in W around the mean w; deterministic (`inference_noise`)."""
        return self.synthesis(self.broadcast(self.mapped(z, psi)))

    def mix(self, z_coarse: torch.Tensor, z_fine: torch.Tensor, crossover: int, psi: float = 1.0) -> torch.Tensor:
        """Style mixing: ws[:, :crossover] from z_coarse (pose, face shape), ws[:, crossover:] from z_fine
        (colours, texture). crossover 0 gives z_fine's image, n_ws gives z_coarse's. z_*: (N, z_dim)."""
        if isinstance(crossover, bool) or not isinstance(crossover, numbers.Integral) or not 0 <= crossover <= self.n_ws:
            raise ValueError(f"crossover must be an integer in 0..{self.n_ws}, got {crossover!r}")
        crossover = int(crossover)
        ws = mix_ws(self.broadcast(self.mapped(z_coarse, psi)), self.broadcast(self.mapped(z_fine, psi)), crossover)
        return self.synthesis(ws)

    @torch.no_grad()
    def estimate_mean_w(self, n: int = 20_000, generator: torch.Generator | None = None, batch: int = 5_000) -> torch.Tensor:
        """Set `mean_w` to the mean of mapping(z) over n draws of z (from `generator`) and return it."""
        dev = self.mean_w.device
        total = torch.zeros(self.cfg.w_dim, dtype=torch.float64, device=dev)
        for i in range(0, n, batch):
            z = torch.randn(min(batch, n - i), self.cfg.z_dim, generator=generator, device=dev)
            total += self.mapping(z).double().sum(0)
        self.mean_w.copy_((total / n).to(self.mean_w.dtype))
        return self.mean_w.clone()


def mix_ws(ws_coarse: torch.Tensor, ws_fine: torch.Tensor, crossover: int) -> torch.Tensor:
    """(N, n_ws, w_dim) x 2 -> (N, n_ws, w_dim): layers [0, crossover) from ws_coarse, the rest from ws_fine."""
    assert ws_coarse.shape == ws_fine.shape, f"{tuple(ws_coarse.shape)} != {tuple(ws_fine.shape)}"
    return torch.cat([ws_coarse[:, :crossover], ws_fine[:, crossover:]], dim=1)


# ---- discriminator --------------------------------------------------------------------------------------

class EqualConv2d(nn.Module):
    """Conv with equalized learning rate; optional blur + stride-2 downsampling, bias and leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, down: bool = False, bias: bool = True, activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.down, self.activate, self.k = down, activate, kernel
        if down:
            p = (len(BLUR_KERNEL) - 2) + (kernel - 1)
            self.blur = Blur(in_ch, ((p + 1) // 2, p // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight * self.scale).to(x.dtype)
        if self.down:
            x = F.conv2d(self.blur(x), w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.k // 2)
        if self.bias is not None:
            x = x + self.bias[:, None, None].to(x.dtype)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activate else x


class ResBlock(nn.Module):
    """(N, in, H, W) -> (N, out, H/2, W/2): two convs (the second downsamples) plus a 1x1 skip, / sqrt 2."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, down=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, down=True, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append one channel: the std over groups of samples, averaged over features and pixels. (N, C, H, W) -> (N, C+1, H, W)."""
    n, c, h, w = x.shape
    g = min(group, n)
    while n % g:  # the largest group size <= `group` that divides the batch
        g -= 1
    y = x.float().reshape(g, n // g, c, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean([1, 2, 3])  # (n // g,)
    y = y.repeat(g)[:, None, None, None].expand(n, 1, h, w).to(x.dtype)
    return torch.cat([x, y], 1)


class Discriminator(nn.Module):
    def __init__(self, cfg: StyleGAN2Config):
        super().__init__()
        self.cfg = cfg
        r = cfg.resolution
        self.from_rgb = EqualConv2d(cfg.img_channels, cfg.d_channels(r), 1)
        blocks = []
        while r > 4:
            blocks.append(ResBlock(cfg.d_channels(r), cfg.d_channels(r // 2)))
            r //= 2
        self.blocks = nn.Sequential(*blocks)
        c4 = cfg.d_channels(4)
        self.final_conv = EqualConv2d(c4 + 1, c4, 3)
        self.final_linear = EqualLinear(c4 * 16, c4, activate=True)
        self.out = EqualLinear(c4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, R, R) in [-1, 1] -> logits (N,)."""
        assert x.ndim == 4 and x.shape[1:] == (self.cfg.img_channels, self.cfg.resolution, self.cfg.resolution), \
            f"expected (N, {self.cfg.img_channels}, {self.cfg.resolution}, {self.cfg.resolution}), got {tuple(x.shape)}"
        x = self.blocks(self.from_rgb(x))  # (N, c4, 4, 4)
        x = self.final_conv(minibatch_stddev(x, self.cfg.mbstd_group))
        return self.out(self.final_linear(x.flatten(1))).flatten()
