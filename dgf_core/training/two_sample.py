"""Classifier two-sample test (C2ST; Lopez-Paz & Oquab 2017, "Revisiting Classifier Two-Sample Tests").

A small CNN learns to tell image set A from image set B; its accuracy on images it did not train on says
how distinguishable the sets are: 0.5 = indistinguishable, 1.0 = always told apart. The sets are balanced
(the larger is subsampled to the smaller's size) and split into k stratified folds; each fold is tested by a
net trained from scratch on the other k - 1, so every kept image is tested exactly once.

Deterministic given `seed` on the CPU: subsampling, folds, initialisation, batch order and flips all draw from
explicit `torch.Generator`s, never from the global RNG (GPU convolutions may still differ run to run).

Cost and power, measured on 64x64 CelebA crops (5 folds, 6 epochs, one busy CPU thread): 1,000 vs 1,000 images
take about 20 s. Held-out vs training real faces score 0.49-0.50; training faces shrunk to 32x32 and
enlarged back score 0.96 against held-out ones; the shipped DCGAN and StyleGAN2 samples score 1.000 and 0.999.
It trains many small steps, so by default it runs on one intra-op thread (`threads=1`): on a machine busy with
other work, two threads wait on each other at every step (765 vs 765 faces: 200-350 s with two threads beside
a training run, 15 s with one). Not measured on an idle machine, where two threads may be somewhat faster.
"""
from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..data import random_flip, to_float

C2ST_MIN_PER_CLASS = 10  # fewer images per set and a two-sample test is skipped

MIN_SIDE = 8


class C2STNet(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> (N,) logit that an image comes from set B. Four stride-2 3x3 convolutions
    (16-32-64-64 channels, leaky ReLU), global average pooling, one linear layer."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def reset_parameters(self, generator: torch.Generator) -> "C2STNet":
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0.2, generator=generator)
                nn.init.zeros_(m.bias)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == 3, f"expected (N, 3, H, W), got {tuple(x.shape)}"
        return self.head(self.features(x).mean((2, 3)))[:, 0]


def _check_images(name: str, x: Any) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"c2st: {name} must be a (N, 3, H, W) uint8 tensor, got {got}")
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"c2st: images must be at least {MIN_SIDE}x{MIN_SIDE}, got {tuple(x.shape[-2:])}")


def _fit(x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int, lr: float, g: torch.Generator,
         device: torch.device) -> C2STNet:
    """Train a fresh net on (N, 3, H, W) uint8 images x with labels y (N,) in {0, 1}."""
    with torch.device("meta"):  # built without weights, so the default initialisation draws nothing from the global RNG
        net = C2STNet()
    net = net.to_empty(device=device).reset_parameters(g).to(memory_format=torch.channels_last)  # faster convs on CPU
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.99))
    steps, step = epochs * math.ceil(len(x) / batch_size), 0
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            xb = random_flip(to_float(x[idx]), g).to(device, memory_format=torch.channels_last)
            for group in opt.param_groups:  # cosine decay to zero over the run
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            loss = F.binary_cross_entropy_with_logits(net(xb), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return net.eval().requires_grad_(False)


@torch.no_grad()
def _predict(net: C2STNet, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """(N,) predicted labels for uint8 images, from the logit averaged over the image and its mirror."""
    out = []
    for i in range(0, len(x), batch_size):
        xb = to_float(x[i : i + batch_size]).to(device, memory_format=torch.channels_last)
        out.append(((net(xb) + net(xb.flip(-1))) > 0).long().cpu())
    return torch.cat(out)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to n inside the block and restored after it (None: left as it is)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def c2st(a_u8: torch.Tensor, b_u8: torch.Tensor, *, folds: int = 5, epochs: int = 6, batch_size: int = 32,
         lr: float = 2e-3, seed: int = 0, device: str | torch.device = "cpu", threads: int | None = 1) -> dict[str, Any]:
    """Cross-validated classifier two-sample test between (Na, 3, H, W) and (Nb, 3, H, W) uint8 image sets.

    Returns accuracy (mean over folds), stderr (standard error of that mean across folds), fold_accuracies,
    n_per_class (min(Na, Nb): the larger set is subsampled), p_value (one-sided binomial test of all tested
    images' correct count against chance), folds, epochs, seed, threads, seconds and cpu_seconds. Raises ValueError
    on bad input. `threads`: torch's intra-op threads while it runs (restored afterwards); None keeps the setting.
    """
    _check_images("a", a_u8)
    _check_images("b", b_u8)
    if a_u8.shape[1:] != b_u8.shape[1:]:
        raise ValueError(f"c2st: the two sets differ in shape: {tuple(a_u8.shape[1:])} vs {tuple(b_u8.shape[1:])}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"c2st: folds must be an integer >= 2, got {folds!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"c2st: epochs must be a positive integer, got {epochs!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"c2st: threads must be a positive integer or None, got {threads!r}")
    n = min(len(a_u8), len(b_u8))
    if n < folds:
        raise ValueError(f"c2st: need at least {folds} images per set for {folds} folds, got {len(a_u8)} and {len(b_u8)}")
    t0, c0 = time.perf_counter(), time.process_time()
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    a = a_u8[torch.randperm(len(a_u8), generator=g)[:n]].cpu()  # balanced, in random order
    b = b_u8[torch.randperm(len(b_u8), generator=g)[:n]].cpu()
    fold_of = torch.arange(n) % folds  # stratified: each fold takes the same share of both sets
    accs, correct = [], 0
    with torch_threads(threads):
        for k in range(folds):
            tr, te = fold_of != k, fold_of == k
            x = torch.cat([a[tr], b[tr]])
            y = torch.cat([torch.zeros(int(tr.sum())), torch.ones(int(tr.sum()))])
            net = _fit(x, y, epochs=epochs, batch_size=batch_size, lr=lr, g=g, device=device)
            hits = torch.cat([_predict(net, a[te], device) == 0, _predict(net, b[te], device) == 1])
            accs.append(float(hits.float().mean()))
            correct += int(hits.sum())
    acc = torch.tensor(accs, dtype=torch.float64)
    return {"accuracy": float(acc.mean()), "stderr": float(acc.std() / math.sqrt(folds)),
            "fold_accuracies": [round(v, 4) for v in accs], "n_per_class": n,
            "p_value": binomial_p_value(correct, 2 * n), "folds": folds, "epochs": epochs, "seed": seed,
            "threads": threads or torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1),
            "cpu_seconds": round(time.process_time() - c0, 1)}


def pool_repeats(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from repeats of `c2st` against the same set B, each with a fresh set A (new samples) and seed.

    accuracy: the mean over every fold of every repeat; stderr: those folds' standard deviation over the square root
    of their number (each fold tests disjoint images with a net of its own, so they are near-independent given set B,
    which is what two models measured against the same held-out faces share); p_value: the largest of the repeats'
    (each is a valid test, so the largest is a conservative one). `repeats` keeps each repeat's accuracy and stderr.
    """
    if not results:
        raise ValueError("pool_repeats: no results")
    if len(results) == 1:
        return results[0]
    folds = torch.tensor([a for r in results for a in r["fold_accuracies"]], dtype=torch.float64)
    return {"accuracy": float(folds.mean()), "stderr": float(folds.std() / math.sqrt(len(folds))),
            "fold_accuracies": [round(float(v), 4) for v in folds], "n_per_class": results[0]["n_per_class"],
            "p_value": max(r["p_value"] for r in results), "folds": results[0]["folds"], "epochs": results[0]["epochs"],
            "seed": [r["seed"] for r in results], "threads": results[0]["threads"],
            "repeats": [{k: r[k] for k in ("accuracy", "stderr", "seed")} for r in results],
            "seconds": round(sum(r["seconds"] for r in results), 1),
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 1)}


PAIRED_MIN_FOLDS = 10  # fewer paired folds estimate the spread of their differences too roughly to judge by


def paired_stderr(old: dict[str, Any], new: dict[str, Any]) -> float | None:
    """Standard error of new's accuracy minus old's, from their fold-by-fold differences, when the two results
    tested the same folds: the same test settings and seeds (`c2st` draws the subsampling, the folds, each net's
    initialisation and batch order from its seed), so fold k held the same real images and the same sample seeds in
    both, and what the two tests share (which faces are hard, how a net happened to start) cancels. None when they
    did not, or have fewer than PAIRED_MIN_FOLDS folds. The caller must also know that both drew their samples from
    the same seeds against the same real images."""
    keys = ("n_per_class", "folds", "epochs", "seed")
    a, b = old.get("fold_accuracies"), new.get("fold_accuracies")
    if any(old.get(k) != new.get(k) for k in keys) or not a or not b or len(a) != len(b) or len(a) < PAIRED_MIN_FOLDS:
        return None
    d = torch.tensor(b, dtype=torch.float64) - torch.tensor(a, dtype=torch.float64)
    return float(d.std() / math.sqrt(len(d)))


def binomial_p_value(correct: int, total: int) -> float:
    """P(X >= correct) for X ~ Binomial(total, 1/2): how likely a classifier at chance does this well."""
    from scipy.stats import binom

    return float(binom.sf(correct - 1, total, 0.5))
