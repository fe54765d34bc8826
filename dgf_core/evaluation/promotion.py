"""Replace a shipped generator only when a candidate measurably improves on it (`python -m dgf_core ship`).

Both are judged by `evaluate` on the same real data and truncation: face rate at p >= 0.999 (higher is better),
C2ST accuracy against held-out faces (lower is better, 0.5 = indistinguishable), the gap between the samples' and
the training faces' female share (smaller is better), and the memorization ratio (must stay >= 0.9). A metric
counts as better or worse only beyond twice its standard error; for the C2ST, when both evaluations ran the same
folds on the same sample seeds (`evaluate --c2st-repeats R`, R >= 2), that of the fold-by-fold differences, which
cancels what the two tests share. The candidate ships when at least one metric is better and none is worse. The
install is atomic (the new folder is complete before it takes the shipped name), and files computed from the old
weights (edit directions) are removed, not carried over to weights they do not fit.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, file_sha256, read_config, write_json_atomic
from ..training.two_sample import paired_stderr

MEMORIZATION_FLOOR = 0.9  # ratio of median sample->train to held-out->train distances; below: copying training faces
STALE_FILES = ("directions.json",)  # computed from a model's weights: wrong for any other weights


@dataclass(frozen=True)
class Change:
    metric: str
    old: float | None
    new: float | None
    noise: float  # two standard errors of the difference
    verdict: str  # "better" | "worse" | "same" | "missing"
    how: str = ""  # how the noise was estimated, when that is worth saying

    def line(self) -> str:
        if self.old is None or self.new is None:
            return f"{self.metric:<22} {self._fmt(self.old):>8} -> {self._fmt(self.new):<8} missing"
        how = f", {self.how}" if self.how else ""
        return f"{self.metric:<22} {self.old:8.3f} -> {self.new:<8.3f} (+-{self.noise:.3f}{how})  {self.verdict}"

    @staticmethod
    def _fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"


def _get(d: dict[str, Any], *path: str) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _rate_se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def _judge(metric: str, old: float | None, new: float | None, noise: float, higher_is_better: bool,
           how: str = "") -> Change:
    if old is None or new is None:
        return Change(metric, old, new, noise, "missing")
    gain = (new - old) if higher_is_better else (old - new)
    verdict = "better" if gain > noise else "worse" if gain < -noise else "same"
    return Change(metric, old, new, noise, verdict, how)


def _c2st_noise(c_old: dict[str, Any], c_new: dict[str, Any], same_samples: bool) -> tuple[float, str]:
    """Twice the standard error of the difference in C2ST accuracy, and how it was had: from fold-by-fold
    differences when both tests drew their samples from the same seeds and ran the same folds
    (`two_sample.paired_stderr`), else from each test's own standard error."""
    se = paired_stderr(c_old, c_new) if same_samples else None
    if se is not None:
        return 2 * se, f"paired over {len(c_new['fold_accuracies'])} folds"
    return 2 * math.hypot(_get(c_old, "stderr") or 0.0, _get(c_new, "stderr") or 0.0), ""


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Metric by metric, the candidate's evaluation `new` against the shipped one's `old` (both from `evaluate`).
    Raises ValueError when the two were not measured the same way."""
    for key in ("truncation", "resolution"):
        if old.get(key) != new.get(key):
            raise ValueError(f"the evaluations differ in {key} ({old.get(key)} vs {new.get(key)}): not comparable")
    if sorted(old.get("real_data", [])) != sorted(new.get("real_data", [])):
        raise ValueError(f"the evaluations used different real data ({old.get('real_data')} vs {new.get('real_data')})")
    n_old, n_new = int(old.get("n_samples", 0)), int(new.get("n_samples", 0))
    changes = []

    f_old = _get(old, "face_detection", "samples", "p>=0.999")
    f_new = _get(new, "face_detection", "samples", "p>=0.999")
    noise = 2 * math.hypot(_rate_se(f_old, n_old), _rate_se(f_new, n_new)) if None not in (f_old, f_new) else 0.0
    changes.append(_judge("face rate (p>=0.999)", f_old, f_new, noise, higher_is_better=True))

    c_old, c_new = _get(old, "c2st", "samples_vs_heldout"), _get(new, "c2st", "samples_vs_heldout")
    a_old, a_new = _get(c_old or {}, "accuracy"), _get(c_new or {}, "accuracy")
    seeds_old = _get(old, "c2st", "sample_seeds") or old.get("seeds")  # evaluations before repeats: one set
    same_samples = seeds_old is not None and seeds_old == (_get(new, "c2st", "sample_seeds") or new.get("seeds"))
    noise, how = _c2st_noise(c_old, c_new, same_samples) if c_old and c_new else (0.0, "")
    changes.append(_judge("C2ST accuracy", a_old, a_new, noise, higher_is_better=False, how=how))

    s_old, s_new = _get(old, "coverage", "samples", "female_share"), _get(new, "coverage", "samples", "female_share")
    t_old, t_new = _get(old, "coverage", "training", "female_share"), _get(new, "coverage", "training", "female_share")
    g_old = abs(s_old - t_old) if None not in (s_old, t_old) else None
    g_new = abs(s_new - t_new) if None not in (s_new, t_new) else None
    noise = 0.0
    if g_old is not None and g_new is not None:
        noise = 2 * math.hypot(_rate_se(s_old, int(_get(old, "coverage", "samples", "n") or n_old)),
                               _rate_se(s_new, int(_get(new, "coverage", "samples", "n") or n_new)))
    changes.append(_judge("female share gap", g_old, g_new, noise, higher_is_better=False))

    m_old, m_new = _get(old, "memorization", "ratio"), _get(new, "memorization", "ratio")
    if m_old is None or m_new is None:
        changes.append(Change("memorization ratio", m_old, m_new, 0.0, "missing"))
    else:  # a floor, not a score: worse only when the candidate falls below it
        verdict = "worse" if m_new < MEMORIZATION_FLOOR <= m_old else "same"
        changes.append(Change("memorization ratio", m_old, m_new, 0.0, verdict))
    return changes


def improves(changes: list[Change]) -> bool:
    """At least one metric better beyond noise, none worse, the face rate measured on both."""
    verdicts = {c.metric: c.verdict for c in changes}
    if verdicts.get("face rate (p>=0.999)") == "missing":
        return False
    return "better" in verdicts.values() and "worse" not in verdicts.values()


def check_evaluation_of(folder: Path, evaluation: dict[str, Any]) -> None:
    """The evaluation must be of exactly these weights."""
    sha = file_sha256(folder / WEIGHTS_FILE)
    if evaluation.get("weights_sha256") != sha:
        raise ValueError(f"the evaluation is of weights {str(evaluation.get('weights_sha256'))[:12]}..., "
                         f"not of {folder} ({sha[:12]}...): evaluate the candidate itself")


def install(candidate: Path, dest: Path, evaluation: dict[str, Any], note: str | None = None,
            status: str | None = None) -> list[str]:
    """Copy the candidate's weights and card to `dest` with the evaluation (and note, and status: e.g. "in training,
    not yet at its targets", shown wherever the UIs describe the model; a later ship without one drops it, since
    it described other weights) in the card, atomically:
    the new folder is written beside `dest`, then renamed into place. Returns the files of the old folder that
    were computed from its weights and are not carried over."""
    meta = read_config(candidate)  # raises CheckpointError unless it is a dgf-checkpoint config
    if not (candidate / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{candidate} has no {WEIGHTS_FILE}")
    card = dict(meta.get("card", {}))
    card["evaluation"] = evaluation
    card.pop("evaluation_psi0.7", None)  # measured on other weights
    if note:
        card["notes"] = note
    card.pop("status", None)
    if status:
        card["status"] = status
    card["shipped_from"] = str(candidate)
    meta["card"] = card
    tmp = dest.with_name(f".{dest.name}.new")
    old = dest.with_name(f".{dest.name}.old")
    for p in (tmp, old):
        if p.exists():
            shutil.rmtree(p)
    tmp.mkdir(parents=True)
    shutil.copy2(candidate / WEIGHTS_FILE, tmp / WEIGHTS_FILE)
    write_json_atomic(meta, tmp / CONFIG_FILE)
    dropped = []
    if dest.exists():
        for f in sorted(dest.iterdir()):
            if f.name in (WEIGHTS_FILE, CONFIG_FILE):
                continue
            if f.name in STALE_FILES:
                dropped.append(f.name)
            elif f.is_file():  # licences, extra documentation: kept
                shutil.copy2(f, tmp / f.name)
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old.exists():
        shutil.rmtree(old)
    return dropped
