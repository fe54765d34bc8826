"""Motion directions: smile, mouth_open (talking), eyes (narrowing / closing), yaw (head turn) and pitch (nod) in a
generator's latent space, learnt and measured like the age / gender edits (`edits.py`), then kept only when they
move their own attribute far more than age, gender and identity.

What each one is learnt from, on n generated samples of the model (its own crop geometry):
- smile, mouth_open, eyes: the logit of a CelebA attribute classifier (`weights/attributes-celeba`: Smiling,
  Mouth_Slightly_Open, Narrow_Eyes);
- yaw, pitch: degrees of head pose estimated from MTCNN's five landmarks (`pose.py`).
The direction is the latent pattern of a least-squares regression of that measure on the latents
(`edits.covariance_direction`: cov(latents, measure)), made orthogonal to the age and gender directions and to the
motions listed in `Motion.apart_from` (conditional manipulation: a talking mouth that does not also smile, eyes
that narrow without the mouth, a nod that does not also turn), and smile, mouth and eyes to the head pose's regression
filters (`pose_filter`: they do not turn or nod the head as far as the pose regression sees; the pose is learnt for
that whatever is asked), and scaled like age / gender: one unit = one standard deviation of the sampled latents along it.

What each one does is then measured on other samples (another seed) at a ladder of amounts: the change of its own
measure, of age (years, UTKFace classifier), of p(female) and the identity judge's cosine between each edited face
and its unedited self (`likeness.py`, `weights/identity-celeba200-judge`). `motion_amount` is the amount that reaches
the motion's full natural extent (`Motion.target`: a clear smile, an open mouth, narrowed eyes, 15 degrees of yaw,
10 of pitch), or less where the side effects reach their limits first (KEEP_LIMITS); a direction is kept only when at
its motion_amount it still reaches at least MIN_TARGET_SHARE of its target inside those limits, and
(`verify_motion`, `verification_failures`; scripts/compute_directions.py) when on fresh samples at motion_amount its
side effects stay within VERIFY_TOLERANCE times those limits. Method and measurements: docs/motion-directions.md.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..data import to_uint8
from .edits import MAX_EDIT, AttributeClassifier, EditError, _render, covariance_direction, sample_latents

MOTION_NAMES = ("smile", "mouth_open", "eyes", "yaw", "pitch")
LADDER = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)  # amounts at which each direction is measured (and -1 for the head pose)
MIN_TARGET_SHARE = 0.5  # a kept direction reaches at least this share of its target at motion_amount
KEEP_LIMITS = {"age_years": 3.0, "female_prob": 0.1}  # |mean change| allowed at motion_amount (issue 24's limits)
VERIFY_TOLERANCE = 1.5  # the fresh-sample check may exceed KEEP_LIMITS by this factor (sampling noise of a few dozen faces)
RIDGE = 0.05  # of the latents' mean variance, added to their covariance where a head-pose filter is solved
PROB_CLAMP = 1e-3  # classifier probabilities are clamped to [PROB_CLAMP, 1 - PROB_CLAMP] before the logit


@dataclass(frozen=True)
class Motion:
    measure: str  # the key of `measure_faces` that this motion moves
    unit: str  # of that measure
    target: float  # the full natural extent: mean measure to reach (probabilities, on faces starting below START_BELOW) or degrees
    apart_from: tuple[str, ...]  # motions this one is made orthogonal to (besides age and gender)
    positive: str


START_BELOW = 0.3  # probability motions are judged on faces whose probability starts below this
HEAD_POSE = ("yaw", "pitch")  # the face motions are made orthogonal to these: a mouth that opens without a nod
MOTIONS = {
    "smile": Motion("smile", "p(Smiling)", 0.75, HEAD_POSE, "smiling (CelebA Smiling)"),
    "mouth_open": Motion("mouth_open", "p(Mouth_Slightly_Open)", 0.75, ("smile",) + HEAD_POSE,
                         "mouth opening, not smiling (CelebA Mouth_Slightly_Open)"),
    "eyes": Motion("eyes", "p(Narrow_Eyes)", 0.75, ("smile", "mouth_open") + HEAD_POSE, "eyes narrowing towards closed (CelebA Narrow_Eyes)"),
    "yaw": Motion("yaw", "degrees", 15.0, (), "the face turns towards the image's right (landmark yaw)"),
    "pitch": Motion("pitch", "degrees", 10.0, ("yaw",), "chin down, a nod (landmark pitch)"),
}
CELEBA_MEASURES = {"smile": "Smiling", "mouth_open": "Mouth_Slightly_Open", "eyes": "Narrow_Eyes", "glasses": "Eyeglasses"}


def measure_faces(images: torch.Tensor, recipe: str, celeba: AttributeClassifier | None, utk: AttributeClassifier,
                  pose: bool = True, detector=None) -> dict[str, np.ndarray]:
    """(N, 3, R, R) faces in [-1, 1] in `recipe`'s geometry -> {measure: (N,)}: smile, mouth_open, eyes, glasses
    (CelebA probabilities; none without `celeba`), age (years), female (probability), and with `pose` yaw, pitch
    (degrees; NaN where MTCNN finds no face)."""
    from .pose import pose_of

    c = celeba.predict(images, recipe) if celeba is not None else {}
    u = utk.predict(images, recipe)
    out = {k: c[label].double().numpy() for k, label in CELEBA_MEASURES.items() if label in c}
    out.update(age=u["age"].double().numpy(), female=u["female"].double().numpy())
    if pose:
        p = pose_of(to_uint8(images), detector)
        out.update(yaw=p[:, 0], pitch=p[:, 1])
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, PROB_CLAMP, 1 - PROB_CLAMP)
    return np.log(p / (1 - p))


def learn_motion_directions(latents: torch.Tensor, measures: dict[str, np.ndarray], age: torch.Tensor,
                            gender: torch.Tensor, names=MOTION_NAMES, attribute_filters: bool = False) -> dict[str, torch.Tensor]:
    """Unit directions (D,) for the motions `names`, from latents (N, D) and their measures. age / gender: the
    model's existing directions (any scale); every motion is made orthogonal to both and to its `apart_from`
    motions, which are learnt for that even when not asked for (so a motion is the same learnt alone or with others).
    `attribute_filters`: the head pose (yaw, pitch) is also made orthogonal to the regression filters of the
    measured age and p(female) (`pose_filter` on those measures): a turn that the age regression does not see as
    ageing, where one orthogonal to the age direction (a pattern) still ages the face in W."""
    done: dict[str, torch.Tensor] = {}
    filters = [pose_filter(latents, measures[k]) for k in ("age", "female")] if attribute_filters else []

    def learn(name: str) -> torch.Tensor:
        if name not in done:
            m = MOTIONS[name]
            y = measures[m.measure]
            y = y if m.unit == "degrees" else _logit(y)
            ok = np.isfinite(y)
            d = covariance_direction(latents[torch.from_numpy(ok)], torch.from_numpy(y[ok])).double()
            apart = [pose_filter(latents, measures[a]) if m.unit != "degrees" and MOTIONS[a].unit == "degrees" else learn(a)
                     for a in m.apart_from]
            done[name] = orthogonal_to(d, [age, gender] + apart + (filters if m.unit == "degrees" else [])).float()
        return done[name]

    return {name: learn(name) for name in names}


def pose_filter(latents: torch.Tensor, degrees: np.ndarray, ridge: float = RIDGE) -> torch.Tensor:
    """The unit regression filter (D,) of a head pose on the latents (N, D): (cov(latents) + ridge * their mean
    variance * I)^-1 cov(latents, degrees), over the faces with a pose (finite). A step along d changes the pose the
    regression predicts by filter . d: a face motion orthogonal to the filter does not turn or nod the head (to first
    order), where one orthogonal to the pose's pattern still does in an anisotropic space such as W."""
    ok = torch.from_numpy(np.isfinite(degrees))
    x = latents[ok].double() - latents[ok].double().mean(0)
    t = torch.from_numpy(degrees[ok.numpy()]).double()
    cov = x.T @ x / (len(x) - 1)
    reg = ridge * float(cov.diagonal().mean()) * torch.eye(len(cov), dtype=cov.dtype)
    f = torch.linalg.solve(cov + reg, x.T @ (t - t.mean()) / (len(x) - 1))
    return f / f.norm()


def orthogonal_to(d: torch.Tensor, against: list[torch.Tensor]) -> torch.Tensor:
    """d (D,) without its component in the span of `against` (each (D,), any scale), as a unit vector (float64)."""
    u, sv, _ = torch.linalg.svd(torch.stack([b.double() / b.double().norm() for b in against], 1), full_matrices=False)
    q = u[:, sv > 1e-6 * sv[0]]  # an orthonormal basis of their span (D, rank): a dependent one (to float32) adds nothing
    r = d.double() - q @ (q.T @ d.double())
    if not float(r.norm()) > 1e-5 * float(d.double().norm()):
        raise EditError("the direction lies in the span of those it is made orthogonal to")
    return r / r.norm()


def apart_from_all(names) -> tuple[str, ...]:
    """`names` and every motion they are made orthogonal to, directly or through another (each once)."""
    out: list[str] = []

    def add(name: str) -> None:
        if name not in out:
            for a in MOTIONS[name].apart_from:
                add(a)
            out.append(name)

    for name in names:
        add(name)
    return tuple(out)


def cosines(vectors: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """{a: {b: cosine}} between every two of the directions (any scale), rounded to 3 decimals."""
    unit = {k: v.double() / v.double().norm() for k, v in vectors.items()}
    return {a: {b: round(float(unit[a] @ unit[b]), 3) for b in unit if b != a} for a in unit}


def scaled(latents: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Unit direction -> one unit = one standard deviation of the latents along it."""
    return d * float(((latents - latents.mean(0)) @ d).std())


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def effect_at(name: str, base: dict[str, np.ndarray], moved: dict[str, np.ndarray], cosine: np.ndarray) -> dict[str, float]:
    """Mean changes between unedited (`base`) and edited (`moved`) measures of the same faces, and the judge's cosine."""
    m = MOTIONS[name]
    own = moved[m.measure] - base[m.measure]
    out = {"own_change": round(_mean(own), 4)}
    if m.unit != "degrees":  # on the faces that start without the motion: where it ends
        low = base[m.measure] < START_BELOW
        out[f"own_mean_from_below_{START_BELOW}"] = round(_mean(moved[m.measure][low]), 4)
        out[f"own_change_from_below_{START_BELOW}"] = round(_mean(own[low]), 4)
        out["n_below"] = int(low.sum())
    for k in ("smile", "mouth_open", "eyes", "glasses", "yaw", "pitch"):
        if k != m.measure and k in base and k in moved:
            out[f"{k}_change"] = round(_mean(moved[k] - base[k]), 4)
    out.update(age_years_change=round(_mean(moved["age"] - base["age"]), 3),
               female_prob_change=round(_mean(moved["female"] - base["female"]), 4),
               identity_cosine=round(_mean(cosine), 4))
    return out


def _progress(name: str, e: dict[str, float]) -> float:
    """How far along its target an effect is (1 = the target reached)."""
    m = MOTIONS[name]
    if m.unit == "degrees":
        return e["own_change"] / m.target
    start = e[f"own_mean_from_below_{START_BELOW}"] - e[f"own_change_from_below_{START_BELOW}"]
    return (e[f"own_mean_from_below_{START_BELOW}"] - start) / max(m.target - start, 1e-6)


def _within(e: dict[str, float], identity_floor: float) -> bool:
    return (abs(e["age_years_change"]) <= KEEP_LIMITS["age_years"] and abs(e["female_prob_change"]) <= KEEP_LIMITS["female_prob"]
            and e["identity_cosine"] >= identity_floor)


def _interpolate(ladder: dict[float, dict[str, float]], a: float) -> dict[str, float]:
    """The ladder's measures at amount a >= 0, linear between its points (at 0: no change, cosine 1)."""
    zero = {k: (1.0 if k == "identity_cosine" else 0.0) for k in ladder[max(ladder)]}
    pts = [(0.0, zero)] + sorted((x, e) for x, e in ladder.items() if x > 0)
    for (a0, e0), (a1, e1) in zip(pts, pts[1:]):
        if a <= a1:
            w = (a - a0) / (a1 - a0)
            return {k: e0.get(k, e1[k]) + w * (e1[k] - e0.get(k, e1[k])) for k in e1}
    return dict(pts[-1][1])


def choose_amount(name: str, ladder: dict[float, dict[str, float]], identity_floor: float, step: float = 0.01) -> dict[str, Any]:
    """The motion amount, walking up from 0 over the positive side of the ladder (measures interpolated between its
    points): the first amount that reaches the target, unless the side effects leave their limits first (KEEP_LIMITS;
    the judge's mean cosine to the unedited face >= identity_floor), then the last amount inside them.
    Returns {"amount", "reason", "target_share" (the share of the target reached at that amount)}."""
    top = max(x for x in ladder if x > 0)
    last, share = 0.0, 0.0
    for a in np.arange(step, top + step / 2, step):
        e = _interpolate(ladder, float(a))
        if not _within(e, identity_floor):
            return {"amount": round(last, 3), "reason": f"the side-effect limits are reached at {a:.2f} first",
                    "target_share": round(share, 3)}
        last, share = float(a), _progress(name, e)
        if share >= 1.0:
            return {"amount": round(last, 3), "reason": "reaches the target", "target_share": 1.0}
    return {"amount": round(last, 3), "reason": f"target not reached by {top:g} units", "target_share": round(share, 3)}


def compute_motion_directions(model, celeba: AttributeClassifier | None, utk: AttributeClassifier, judge, age: torch.Tensor,
                              gender: torch.Tensor, *, n: int = 3000, n_eval: int = 300, seed: int = 0, names=MOTION_NAMES,
                              detector=None, ladder: tuple[float, ...] = LADDER, log: Callable[[str], None] | None = None,
                              attribute_filters: bool = False) -> dict[str, Any]:
    """Learn, measure and select the motion directions of `model` (a LoadedModel). age / gender: its existing
    directions. Returns {"directions": {name: entry}, "dropped": {name: reason}, "details": {...}}; each entry
    holds vector (scaled: one unit = one latent std), motion_amount, effects (per unit), method and the
    measurements it was chosen on. `ladder`: the positive amounts measured (1 always, and -1 for the head pose)."""
    from .alignment import model_recipe
    from .mtcnn import load_detector

    log = log or (lambda _m: None)
    detector = detector or load_detector()
    names = tuple(names)
    unknown = [x for x in names if x not in MOTIONS]
    if unknown:
        raise EditError(f"unknown motions {unknown}; known: {list(MOTIONS)}")
    if celeba is None and any(MOTIONS[x].unit != "degrees" for x in names):
        raise EditError("smile, mouth_open and eyes need the CelebA attribute classifier")
    g = model.generator
    space = "w" if hasattr(g, "synthesis") else "z"
    recipe = model_recipe(model.card)
    t0 = time.perf_counter()
    lat = sample_latents(g, space, n, seed, model.config.z_dim)
    need_pose = any(MOTIONS[x].unit == "degrees" for x in apart_from_all(names))  # landmarks only for the head pose
    meas = measure_faces(_render(g, lat, space), recipe, celeba, utk, pose=need_pose, detector=detector)
    log(f"measured {n} samples in {time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"{k} sd {np.nanstd(v):.3g}" for k, v in meas.items()))
    unit = learn_motion_directions(lat, meas, age, gender, names, attribute_filters=attribute_filters)
    vecs = {k: scaled(lat, d) for k, d in unit.items()}
    # measure on other samples
    ev = sample_latents(g, space, n_eval, seed + 1, model.config.z_dim)
    base_img = _render(g, ev, space)
    base = measure_faces(base_img, recipe, celeba, utk, pose=need_pose, detector=detector)
    floor = float(judge.card["heldout_verification"]["eer_threshold"])  # the judge's same-person threshold
    if not ladder or min(ladder) <= 0 or max(ladder) > MAX_EDIT:
        raise EditError(f"ladder amounts must lie in (0, {MAX_EDIT:g}], got {list(ladder)}")
    result: dict[str, Any] = {"directions": {}, "dropped": {}, "identity_floor": floor,
                              "learning": {"n": n, "seed": seed, "measure_sd": {k: round(float(np.nanstd(v)), 4) for k, v in meas.items()},
                                           **({"no_face_share": round(float(np.isnan(meas["yaw"]).mean()), 4)} if need_pose else {})},
                              "evaluation": {"n": n_eval, "seed": seed + 1, "ladder": sorted(set(ladder) | {1.0})}}
    for name in names:
        m = MOTIONS[name]
        pose = m.unit == "degrees"
        steps = sorted(set(ladder) | {1.0} | ({-1.0} if pose else set()))
        ladder = {}
        for a in steps:
            img = _render(g, ev + a * vecs[name].to(ev)[None], space)
            moved = measure_faces(img, recipe, celeba, utk, pose=need_pose, detector=detector)  # a face motion's pose change too
            ladder[a] = effect_at(name, base, moved, judge(img, base_img, recipe).double().numpy())
        if pose:  # degrees per unit: least squares through the ladder (and 0)
            xs = np.array([0.0] + steps)
            ys = np.array([0.0] + [ladder[a]["own_change"] for a in steps])
            slope = float((xs * ys).sum() / (xs * xs).sum())
        else:
            slope = ladder[1.0]["own_change"]
        pick = choose_amount(name, {a: e for a, e in ladder.items() if a > 0}, floor)
        one = ladder[1.0]
        entry = {
            "vector": vecs[name].tolist(),
            "unit": "one standard deviation of sampled latents along the direction",
            "positive": m.positive,
            "motion_amount": pick["amount"],
            "motion_amount_reason": pick["reason"],
            "effects": {f"{m.measure}_{'degrees' if pose else 'prob'}": round(slope, 4),
                        "age_years": one["age_years_change"], "female_prob": one["female_prob_change"],
                        "identity_cosine": one["identity_cosine"]},
            "method": (f"pattern: cov(latents, {'landmark ' + name + ' degrees' if pose else 'logit p(' + CELEBA_MEASURES[name] + ')'})"
                       f" over {n} samples, orthogonal to age, gender" + "".join(f", {a}" for a in m.apart_from)
                       + (" and to the age and p(female) regression filters" if attribute_filters and pose else "")),
            "measured": {f"{a:+g}": ladder[a] for a in steps},
        }
        log(f"{name}: {slope:+.3f} {m.unit}/unit, motion_amount {pick['amount']} ({pick['reason']}); at 1 unit age "
            f"{one['age_years_change']:+.2f} y, female {one['female_prob_change']:+.3f}, identity cos {one['identity_cosine']:.3f} "
            f"({time.perf_counter() - t0:.0f} s)")
        if not pick["target_share"] >= MIN_TARGET_SHARE or pick["amount"] <= 0:  # NaN (no face to judge on) drops it too
            result["dropped"][name] = {"reason": f"reaches {pick['target_share']:.0%} of its target ({m.target:g}) inside "
                                                 f"the limits ({pick['reason']})", "measured": entry["measured"],
                                       "effects": entry["effects"]}
        else:
            result["directions"][name] = entry
    return result


def verification_failures(check: dict[str, float], identity_floor: float) -> list[str]:
    """What a fresh-sample check at motion_amount (`verify_motion`) breaks: side effects past KEEP_LIMITS times
    VERIFY_TOLERANCE, the judge's cosine below identity_floor, or the motion going the wrong way."""
    out = []
    if not check["own_change"] > 0:
        out.append(f"its own measure moved by {check['own_change']:+.3g}")
    for key, limit in (("age_years", KEEP_LIMITS["age_years"]), ("female_prob", KEEP_LIMITS["female_prob"])):
        if not abs(check[f"{key}_change"]) <= limit * VERIFY_TOLERANCE:
            out.append(f"{key} changed by {check[f'{key}_change']:+.3g} (limit {limit:g})")
    if not check["identity_cosine"] >= identity_floor:
        out.append(f"judge cosine {check['identity_cosine']:.3f} < {identity_floor:g}")
    return out


def verify_motion(model, entry: dict[str, Any], name: str, celeba: AttributeClassifier | None, utk: AttributeClassifier, judge, *,
                  n: int = 300, seed: int = 2, detector=None) -> dict[str, float]:
    """What `motion_amount` of a stored motion entry does on n fresh samples (seed not used for learning or choosing)."""
    from .alignment import model_recipe

    g = model.generator
    space = "w" if hasattr(g, "synthesis") else "z"
    recipe = model_recipe(model.card)
    lat = sample_latents(g, space, n, seed, model.config.z_dim)
    base_img = _render(g, lat, space)
    pose = any(MOTIONS[x].unit == "degrees" for x in apart_from_all([name]))  # as compute_motion_directions measured it
    base = measure_faces(base_img, recipe, celeba, utk, pose=pose, detector=detector)
    vec = torch.tensor(entry["vector"], dtype=lat.dtype)
    img = _render(g, lat + float(entry["motion_amount"]) * vec[None], space)
    moved = measure_faces(img, recipe, celeba, utk, pose=pose, detector=detector)
    return {"n": n, "seed": seed, "amount": entry["motion_amount"],
            **effect_at(name, base, moved, judge(img, base_img, recipe).double().numpy())}
