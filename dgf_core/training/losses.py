"""GAN losses and EMA as small pure functions (cf. rosinality/stylegan2-pytorch `train.py`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), from logits: the DCGAN paper's BCE with labels 1 (real) and 0 (fake)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(G(z)): the non-saturating generator loss (BCE of fakes against label 1)."""
    return F.softplus(-fake_logits).mean()


def d_relativistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Relativistic average D loss (Jolicoeur-Martineau 2018; ESRGAN): real should look more real than the mean fake,
    fake less real than the mean real. Patch logits are averaged over the batch and all positions."""
    return 0.5 * (F.softplus(-(real_logits - fake_logits.mean())).mean() + F.softplus(fake_logits - real_logits.mean()).mean())


def g_relativistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side of `d_relativistic_loss` (labels swapped); gradients flow from both terms, through
    `fake_logits` (pass `real_logits` detached)."""
    return 0.5 * (F.softplus(real_logits - fake_logits.mean()).mean() + F.softplus(-(fake_logits - real_logits.mean())).mean())


def d_r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1: squared gradient norm of D's output at real images (real must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers (BN statistics) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach().to(p_ema.dtype), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def ema_decay_at(step: int, decay: float, warmup: bool = True) -> float:
    """Warm-up so that early EMA weights are not dominated by the random init. A run that starts from trained
    weights (--init-from) has no random init to forget: warmup=False gives the full decay from its first step."""
    return min(decay, (1.0 + step) / (10.0 + step)) if warmup else decay
