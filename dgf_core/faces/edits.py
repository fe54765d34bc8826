"""Gentle edits: linear attribute directions in a generator's latent space (InterFaceGAN, Shen et al. 2020).

1. An attribute classifier (`models/attributes.py`: age, gender) is trained on UTKFace's labels
   (`train_attribute_classifier`), in UTKFace's own chip geometry.
2. It labels generated samples: each sample is warped from the model's crop geometry into the chip
   geometry with the similarity between the two recipes' measured canonical landmarks (`recipe_warp`).
3. A linear classifier in latent space separates the samples (gender: confident male vs female; age: the
   oldest vs the youngest third) (`learn_direction`). The edit direction is the latent *pattern* of that
   boundary, the latents' covariance times its normal (`pattern_direction`; Haufe et al. 2014, "On the
   interpretation of weight vectors of linear models"): the way the latents of older faces differ from younger
   ones. In z (isotropic) the two coincide; in StyleGAN2's W (anisotropic) the normal leans on low-variance
   coordinates that separate the classes but change little: one unit along it aged the shipped StyleGAN2 by
   0.5 years, along the pattern by 6.5 (`docs/results/edit-directions-probe.json`). Age is made orthogonal to
   gender (conditional manipulation), so "older" does not also mean "more male".
4. One unit of edit is one standard deviation of the sampled latents along the direction, so amounts mean
   the same in z and in W; `MAX_EDIT` bounds them (gentle edits stay near the data).
`attribute_profile` says what the classifier sees in a set of faces (share of women, ages): the coverage figures
of `evaluate` and of the trainer's snapshots.
`measure_edit` reports what a unit does: the change of the classified attribute, the change of the other,
and how far the image moves (RMS pixel change); the likeness limits are on the model card.

Directions are stored as JSON beside the model (`<model folder>/directions.json`) with the weights hash
they were computed for, and the classifier as safetensors + config.json (its card holds its accuracy).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_net, save_net
from ..data import to_float
from ..models.attributes import AttributeConfig, AttributeNet

ATTRIBUTES = ("age", "gender")
DIRECTIONS_FILE = "directions.json"
DIRECTIONS_FORMAT = "dgf-directions/1"
CLASSIFIER_FORMAT = "dgf-attributes/1"
MAX_EDIT = 3.0  # |amount| in units of one latent standard deviation along the direction
ATTRIBUTE_CLASSIFIER = "attributes-utkface"  # the shipped classifier, in the weights folder
AGE_BINS = (0, 20, 30, 40, 50, 60)  # lower edges in years of the age profile; the last bin is open (60+)


class EditError(ValueError):
    """Bad edit request (unknown attribute, amount out of range, directions for another model)."""


# ---- geometry between crop recipes -------------------------------------------------------------------------

def recipe_warp(images: torch.Tensor, from_recipe: str, to_recipe: str, size: int) -> torch.Tensor:
    """Warp (N, 3, R, R) faces in `from_recipe`'s crop geometry into `to_recipe`'s, at size x size.
    Differentiable (grid_sample); area outside the source repeats its border."""
    from .alignment import estimate_similarity, invert_transform, load_canonical

    if from_recipe == to_recipe:
        return images if images.shape[-1] == size else F.interpolate(images, size=(size, size), mode="area" if images.shape[-1] > size else "bilinear")
    m = estimate_similarity(load_canonical(from_recipe), load_canonical(to_recipe))  # normalized coords
    inv = invert_transform(m)  # to -> from, in [0, 1] units
    # affine_grid works in [-1, 1] (align_corners=False: the outer pixel edges); u = (x + 1) / 2
    a = inv[:, :2]
    t = inv[:, 2]
    theta = np.concatenate([a, (2 * t + a.sum(1) - 1)[:, None]], 1)  # x_src = a x_out + (2 t + a 1 - 1)
    theta_t = torch.tensor(theta, dtype=images.dtype, device=images.device)[None].expand(images.shape[0], 2, 3)
    grid = F.affine_grid(theta_t, (images.shape[0], images.shape[1], size, size), align_corners=False)
    ratio = images.shape[-1] * float(np.sqrt(abs(np.linalg.det(a)))) / size  # source pixels per output pixel
    src = F.avg_pool2d(images, int(ratio)) if ratio >= 2 else images  # shrinking a lot: pre-filter by pooling
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ---- the attribute classifier ----------------------------------------------------------------------------

@dataclass
class AttributeClassifier:
    net: AttributeNet
    card: dict[str, Any]
    sha256: str = ""

    def native_side(self, recipe: str) -> int:
        """The side of a crop in `recipe`'s geometry from which the classifier's input takes one source pixel per
        input pixel: a smaller crop is enlarged on its way in (blurred: a 64-px classifier reading a 64-px CelebA
        centre crop sees a 36-px face enlarged), a larger one shrunk (pre-filtered)."""
        from .alignment import estimate_similarity, load_canonical

        m = estimate_similarity(load_canonical(self.net.cfg.recipe), load_canonical(recipe))  # classifier -> recipe
        share = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))  # the classifier's crop's side in the recipe's crop
        return int(math.ceil(self.net.cfg.resolution / share - 1e-6))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, recipe: str, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """(N, 3, R, R) faces in [-1, 1] in the crop geometry `recipe` -> {"age": years (N,), "female": prob (N,)},
        or for a classifier of binary labels {label: probability (N,)}."""
        outs = []
        dev = next(self.net.parameters()).device
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(dev).float()
            outs.append(self.net(recipe_warp(x, recipe, self.net.cfg.recipe, self.net.cfg.resolution)).cpu())
        out = torch.cat(outs) if outs else torch.zeros(0, self.net.cfg.n_outputs)
        if self.net.cfg.labels:
            return {name: torch.sigmoid(out[:, j]) for j, name in enumerate(self.net.cfg.labels)}
        return {"age": self.net.age_years(out), "female": torch.sigmoid(out[:, 1])}


def save_classifier(folder: str | os.PathLike, net: AttributeNet, card: dict[str, Any]) -> Path:
    return save_net(folder, net, CLASSIFIER_FORMAT, card)


def load_classifier(folder: str | os.PathLike, device: str | torch.device = "cpu") -> AttributeClassifier:
    return AttributeClassifier(*load_net(folder, CLASSIFIER_FORMAT, AttributeConfig, AttributeNet, device))


# ---- what the classifier sees in a set of faces (coverage: evaluation and the trainer's snapshots) ------------

def age_bin_labels(edges: Sequence[int] = AGE_BINS) -> list[str]:
    """(0, 20, 30) -> ['0-19', '20-29', '30+']."""
    return [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


def attribute_profile(images_u8: torch.Tensor, classifier, recipe: str, chunk: int = 1024) -> dict[str, Any]:
    """(N, 3, R, R) uint8 faces in the crop geometry `recipe` -> what an `AttributeClassifier` sees in them:
    female_share (p(female) > 0.5), mean_p_female, age_mean / age_median (years), age_shares over AGE_BINS, n."""
    assert images_u8.ndim == 4 and images_u8.shape[1] == 3 and images_u8.dtype == torch.uint8, tuple(images_u8.shape)
    preds = [classifier.predict(to_float(images_u8[i : i + chunk]), recipe) for i in range(0, len(images_u8), chunk)]
    age = torch.cat([p["age"] for p in preds]).double()
    fem = torch.cat([p["female"] for p in preds]).double()
    bins = torch.bucketize(age, torch.tensor(AGE_BINS[1:], dtype=torch.float64), right=True)  # bin i: [edge i, edge i+1)
    shares = torch.bincount(bins, minlength=len(AGE_BINS)).double() / len(age)
    return {"n": len(age), "female_share": round(float((fem > 0.5).double().mean()), 4),
            "mean_p_female": round(float(fem.mean()), 4), "age_mean": round(float(age.mean()), 2),
            "age_median": round(float(age.median()), 2),
            "age_shares": {k: round(float(v), 4) for k, v in zip(age_bin_labels(), shares)}}


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips, small shifts / zooms (as alignment noise) and brightness / contrast jitter. x: (N, 3, R, R)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    scale = 1.0 + (torch.rand(n, generator=g) - 0.5) * 0.16
    shift = (torch.rand(n, 2, generator=g) - 0.5) * 0.12
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    x = F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), padding_mode="border", align_corners=False)
    gain = 1.0 + (torch.rand(n, 1, 1, 1, generator=g) - 0.5) * 0.4
    bias = (torch.rand(n, 1, 1, 1, generator=g) - 0.5) * 0.2
    return (x * gain + bias).clamp(-1, 1)


def fit_on_cpu_budget(net: nn.Module, opt: torch.optim.Optimizer, batch_loss: Callable[[], torch.Tensor], *,
                      steps: int, minutes: float | None, lr: float, log: Callable[[str], None] | None = None,
                      loss_digits: int = 4) -> dict[str, Any]:
    """The small nets' training loop: `batch_loss()` draws a batch and returns its loss; lr decays on a cosine over
    `steps`, or over `minutes` of this process's CPU time when that ends first (a shared machine does not shrink
    a CPU-time budget). Leaves `net` in eval mode without gradients; returns steps and timings."""
    t0, c0, step = time.perf_counter(), time.process_time(), 0
    net.train()
    while step < steps and (minutes is None or time.process_time() - c0 < 60 * minutes):
        frac = step / steps if minutes is None else max(step / steps, (time.process_time() - c0) / (60 * minutes))
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if log and step % 200 == 0:
            log(f"step {step} loss {float(loss.detach()):.{loss_digits}f} ({time.perf_counter() - t0:.0f} s)")
    net.eval().requires_grad_(False)
    return {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1)}


def train_attribute_classifier(
    images_u8: torch.Tensor, ages: torch.Tensor, female: torch.Tensor, *, cfg: AttributeConfig | None = None,
    steps: int = 4000, minutes: float | None = None, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None, log: Callable[[str], None] | None = None,
    amp: bool = False,
) -> tuple[AttributeNet, dict[str, Any]]:
    """Train on (N, 3, R, R) uint8 UTKFace chips with ages (years) and female (0/1) labels. Stops at `steps`
    or after `minutes` of this process's CPU time. `amp`: the forward pass under bf16 autocast (about 2.5x faster
    on a CPU with AVX512-BF16; the loss in fp32). Returns the net (eval mode) and a card with held-out age MAE and
    gender accuracy."""
    cfg = cfg or AttributeConfig()
    assert images_u8.shape[1:] == (3, cfg.resolution, cfg.resolution), tuple(images_u8.shape)
    log_age = torch.log1p(ages.float())
    cfg = AttributeConfig(**{**asdict(cfg), "age_mean": float(log_age.mean()), "age_std": float(log_age.std())})
    torch.manual_seed(seed)
    net = AttributeNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    y_age = (log_age - cfg.age_mean) / cfg.age_std

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(images_u8), (batch_size,), generator=g)
        x = _augment(images_u8[idx].float().div(127.5).sub(1.0), g)
        with torch.autocast("cpu", torch.bfloat16, enabled=amp):
            out = net(x).float()
        return F.smooth_l1_loss(out[:, 0], y_age[idx]) + F.binary_cross_entropy_with_logits(out[:, 1], female[idx].float())

    card: dict[str, Any] = {**fit_on_cpu_budget(net, opt, batch_loss, steps=steps, minutes=minutes, lr=lr, log=log,
                                                loss_digits=4), "n_train": len(images_u8), "bf16_autocast": amp}
    if val is not None:
        clf = AttributeClassifier(net, {})
        pred = clf.predict(val[0].float().div(127.5).sub(1.0), cfg.recipe)
        card["heldout"] = {"n": len(val[0]), "age_mae_years": round(float((pred["age"] - val[1].float()).abs().mean()), 2),
                           "gender_accuracy": round(float(((pred["female"] > 0.5) == val[2].bool()).float().mean()), 4)}
    return net, card


def train_label_classifier(
    faces: torch.Tensor, labels: torch.Tensor, names: Sequence[str], *, cfg: AttributeConfig | None = None,
    steps: int = 4000, minutes: float | None = None, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
    val: tuple[torch.Tensor, torch.Tensor] | None = None, log: Callable[[str], None] | None = None,
) -> tuple[AttributeNet, dict[str, Any]]:
    """Train binary labels (e.g. CelebA's Smiling) on faces already in the classifier's geometry: faces (N, 3, r, r)
    in [-1, 1] (r = cfg.resolution, recipe cfg.recipe), labels (N, K) in {0, 1}, K = len(names). The loss weighs
    each label's positives by its negatives / positives, so rare labels (Narrow_Eyes: about 1 in 9) are learnt.
    Returns the net (eval mode) and a card; with `val` = (faces, labels) the card holds, per label, held-out
    accuracy, balanced accuracy, ROC AUC and the majority-class accuracy to read them against."""
    names = tuple(names)
    cfg = AttributeConfig(**{**asdict(cfg or AttributeConfig()), "labels": names})
    assert faces.shape[1:] == (3, cfg.resolution, cfg.resolution), tuple(faces.shape)
    assert labels.shape == (len(faces), len(names)), (tuple(labels.shape), len(names))
    y = labels.float()
    pos = y.mean(0).clamp(1e-3, 1 - 1e-3)
    pos_weight = ((1 - pos) / pos).clamp(max=10.0)
    torch.manual_seed(seed)
    net = AttributeNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, len(faces), (batch_size,), generator=g)
        return F.binary_cross_entropy_with_logits(net(_augment(faces[idx], g)), y[idx], pos_weight=pos_weight)

    card: dict[str, Any] = {**fit_on_cpu_budget(net, opt, batch_loss, steps=steps, minutes=minutes, lr=lr, log=log),
                            "n_train": len(faces), "train_positive_share": {n: round(float(p), 4) for n, p in zip(names, pos)}}
    if val is not None:
        with torch.no_grad():
            prob = torch.sigmoid(torch.cat([net(val[0][i : i + 512]) for i in range(0, len(val[0]), 512)]))
        card["heldout"] = {"n": len(val[0]), **{n: binary_scores(prob[:, j], val[1][:, j]) for j, n in enumerate(names)}}
    return net, card


def binary_scores(prob: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
    """Accuracy at 0.5, balanced accuracy, ROC AUC (rank statistic) and the majority-class accuracy. prob, label: (N,)."""
    y = label.bool()
    pred = prob > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    out = {"accuracy": round(float((pred == y).float().mean()), 4),
           "majority_accuracy": round(max(n_pos, n_neg) / max(1, len(y)), 4), "positives": n_pos}
    if n_pos and n_neg:
        ranks = torch.empty(len(prob), dtype=torch.float64)
        ranks[torch.argsort(prob.double())] = torch.arange(1, len(prob) + 1, dtype=torch.float64)
        out["roc_auc"] = round(float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)), 4)
        out["balanced_accuracy"] = round(float((pred[y].float().mean() + (~pred[~y]).float().mean()) / 2), 4)
    return out


# ---- directions ------------------------------------------------------------------------------------------

def learn_direction(latents: torch.Tensor, labels: torch.Tensor, l2: float = 1e-3, iters: int = 200) -> torch.Tensor:
    """Unit normal of the logistic-regression boundary separating labels 1 from 0. latents: (N, D); labels: (N,)
    in {0, 1}. The latents are standardised for the fit and the normal mapped back to latent space."""
    x = latents.double()
    y = labels.double()
    if len(y) < 2 or not ((y == 0) | (y == 1)).all() or y.min() == y.max():
        raise EditError("learn_direction needs labels of both classes 0 and 1")
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    xs = (x - mu) / sd
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xs @ w + b, y) + l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    n = (w.detach() / sd)  # the boundary's normal in the original coordinates
    return (n / n.norm()).float()


def pattern_direction(latents: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """Unit latent pattern of a linear boundary: cov(latents) @ normal, normalised, (D,). It points where the
    latents of the two classes differ (for a logistic boundary, close to the difference of the class means),
    which, unlike the normal itself, moves the image in anisotropic spaces such as StyleGAN2's W."""
    x = latents.double()
    cov = torch.cov((x - x.mean(0)).T)
    p = cov @ normal.double()
    if not float(p.norm()) > 0:
        raise EditError("pattern_direction: the latents do not vary along the boundary's normal")
    return (p / p.norm()).float()


def covariance_direction(latents: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unit latent pattern of a least-squares regression of a continuous `target` (N,) on latents (N, D):
    cov(latents) @ w = cov(latents, target), normalised (D,): the way latents differ along the target (a measured
    head pose, a classifier's logit), the regression's counterpart of `pattern_direction`."""
    x = latents.double() - latents.double().mean(0)
    t = target.double() - target.double().mean()
    if len(t) < 3 or not float(t.std()) > 0:
        raise EditError("covariance_direction needs a target that varies over at least 3 samples")
    c = x.T @ t / (len(t) - 1)
    return (c / c.norm()).float()


def orthogonalize(d: torch.Tensor, against: torch.Tensor) -> torch.Tensor:
    """d minus its component along `against`, renormalised (both (D,))."""
    u = against / against.norm()
    r = d - (d @ u) * u
    return r / r.norm()


def sample_latents(generator: nn.Module, space: str, n: int, seed: int, z_dim: int) -> torch.Tensor:
    """n latents of the distribution the generator was trained on: z ~ N(0, I), or w = mapping(z) (StyleGAN2)."""
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
    if space == "z":
        return z
    with torch.no_grad():
        return torch.cat([generator.mapping(z[i : i + 1024]) for i in range(0, n, 1024)])


def _render(generator: nn.Module, latents: torch.Tensor, space: str, batch: int = 256) -> torch.Tensor:
    from ..latent import synthesize

    sp = "w" if space in ("w", "w+") else "z"
    with torch.no_grad():
        return torch.cat([synthesize(generator, latents[i : i + batch], sp).clamp(-1, 1) for i in range(0, len(latents), batch)])


def compute_directions(model, classifier: AttributeClassifier, *, n: int = 4000, seed: int = 0, recipe: str | None = None,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Label n generated samples of `model` (a LoadedModel) and learn the age and gender directions.
    Returns the JSON-able directions table (see `save_directions`)."""
    from .alignment import model_recipe

    g = model.generator
    space = "w" if hasattr(g, "synthesis") else "z"
    recipe = recipe or model_recipe(model.card)
    lat = sample_latents(g, space, n, seed, model.config.z_dim)
    t0 = time.perf_counter()
    pred = classifier.predict(_render(g, lat, space), recipe)
    if log:
        log(f"labelled {n} samples in {time.perf_counter() - t0:.0f} s: median age {float(pred['age'].median()):.1f}, "
            f"female {float((pred['female'] > 0.5).float().mean()):.2f}")
    fem = pred["female"]
    conf = (fem - 0.5).abs() > 0.3  # confident labels only, unless that leaves a class nearly empty
    gender_split = "p(female) < 0.2 vs > 0.8"
    if min(int((fem[conf] > 0.5).sum()), int((fem[conf] < 0.5).sum())) < max(10, n // 20):
        conf, gender_split = torch.ones_like(conf), "below vs above the median p(female)"
        fem = (fem > fem.median()).float()
    d_gender = pattern_direction(lat[conf], learn_direction(lat[conf], (fem[conf] > 0.5).long()))
    lo, hi = pred["age"].quantile(1 / 3), pred["age"].quantile(2 / 3)
    sel = (pred["age"] <= lo) | (pred["age"] >= hi)
    d_age = orthogonalize(pattern_direction(lat[sel], learn_direction(lat[sel], (pred["age"][sel] >= hi).long())), d_gender)
    table: dict[str, Any] = {"format": DIRECTIONS_FORMAT, "model": model.name, "weights_sha256": model.weights_sha256,
                             "space": space, "n_samples": n, "seed": seed, "recipe": recipe,
                             "method": "pattern: cov(latents) @ logistic normal (age orthogonal to gender)",
                             "classifier_sha256": classifier.sha256, "directions": {}}
    for name, d in (("age", d_age), ("gender", d_gender)):
        std = float(((lat - lat.mean(0)) @ d).std())
        table["directions"][name] = {"vector": (d * std).tolist(), "unit": "one standard deviation of sampled latents along the direction",
                                     "positive": {"age": "older", "gender": "more female (UTKFace coding)"}[name]}
    table["directions"]["age"]["label_split"] = f"predicted age <= {float(lo):.1f} vs >= {float(hi):.1f} years (thirds)"
    table["directions"]["gender"]["label_split"] = gender_split
    return table


def save_directions(table: dict[str, Any], path: str | os.PathLike) -> Path:
    from ..checkpoint import write_json_atomic

    write_json_atomic(table, path)
    return Path(path)


def load_directions(model, path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """{attribute: direction (D,) scaled to one unit} for `model` (from `<model folder>/directions.json` by
    default). Raises EditError when the file is missing or was computed for other weights."""
    path = Path(path) if path else Path(model.path) / DIRECTIONS_FILE
    if not path.is_file():
        raise EditError(f"no edit directions for model {model.name!r} (expected {path}); compute them with "
                        "scripts/compute_directions.py")
    table = json.loads(path.read_text())
    if table.get("format") != DIRECTIONS_FORMAT:
        raise EditError(f"{path} is not a {DIRECTIONS_FORMAT} file")
    if table.get("weights_sha256") and model.weights_sha256 and table["weights_sha256"] != model.weights_sha256:
        raise EditError(f"{path} was computed for other weights of {table.get('model')!r}; recompute it for this model")
    return {k: torch.tensor(v["vector"], dtype=torch.float32) for k, v in table["directions"].items()}


def check_edits(amounts: dict[str, float], directions: dict[str, torch.Tensor]) -> dict[str, float]:
    out = {}
    for k, v in amounts.items():
        if k not in directions:
            raise EditError(f"unknown edit {k!r}; this model has {sorted(directions)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > MAX_EDIT:
            raise EditError(f"edit {k} must be a number in [-{MAX_EDIT:g}, {MAX_EDIT:g}], got {v!r}")
        out[k] = float(v)
    return out


def parse_edits(items: Sequence[str]) -> dict[str, float]:
    """['age=+1.5', 'gender=-0.5'] -> {'age': 1.5, 'gender': -0.5} (the CLI's --edit)."""
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise EditError(f"--edit expects NAME=AMOUNT such as age=+1.5, got {item!r}") from None
        if not sep:
            raise EditError(f"--edit expects NAME=AMOUNT such as age=+1.5, got {item!r}")
    return out


def apply_edits(latent: torch.Tensor, space: str, directions: dict[str, torch.Tensor], amounts: dict[str, float]) -> torch.Tensor:
    """latent + sum(amount * direction). latent: (N, D) for z / w, (N, n_ws, D) for w+ (every layer moves)."""
    amounts = check_edits(amounts, directions)
    delta = torch.zeros(latent.shape[-1])
    for k, a in amounts.items():
        d = directions[k]
        if d.shape != (latent.shape[-1],):
            raise EditError(f"direction {k!r} has {d.shape[0]} dimensions; the latent has {latent.shape[-1]}")
        delta = delta + a * d
    delta = delta.to(latent)
    return latent + (delta[None, None, :] if space == "w+" else delta[None, :])


def measure_edit(model, classifier: AttributeClassifier, directions: dict[str, torch.Tensor], *, n: int = 200, seed: int = 1,
                 amount: float = 1.0, recipe: str | None = None, likeness=None) -> dict[str, Any]:
    """What one unit of each edit does on n held-out samples (a seed other than the fitting one): change of the
    predicted age (years) and female probability, the RMS pixel change (images in [0, 1]) and, given a
    `likeness.Likeness`, the mean identity cosine between each edited sample and its unedited self."""
    from .alignment import model_recipe

    g = model.generator
    space = "w" if hasattr(g, "synthesis") else "z"
    recipe = recipe or model_recipe(model.card)
    lat = sample_latents(g, space, n, seed, model.config.z_dim)
    base = _render(g, lat, space)
    p0 = classifier.predict(base, recipe)
    out: dict[str, Any] = {"n": n, "amount": amount}
    for name in directions:
        img = _render(g, apply_edits(lat, space, directions, {name: amount}), space)
        p = classifier.predict(img, recipe)
        out[name] = {"age_change_years": round(float((p["age"] - p0["age"]).mean()), 2),
                     "female_prob_change": round(float((p["female"] - p0["female"]).mean()), 3),
                     "rms_pixel_change": round(float(((img - base) / 2).square().mean((1, 2, 3)).sqrt().mean()), 4)}
        if likeness is not None:
            out[name]["likeness_to_unedited"] = round(float(likeness(img, base, recipe).mean()), 4)
    return out
