"""Learning curves of training runs: read each run's `log.jsonl`, extract its evaluation series, draw them.

A run folder's `log.jsonl` holds one JSON object per line:
- step records (no "kind"): {"step", "images_seen", "d_loss", "g_loss", ...};
- {"kind": "start", "family", "options", "config", ...} at each (re)start;
- {"kind": "eval", "step", "images_seen", "cpu_seconds" (cumulative over all sessions), "face_rate": {"p>=0.999": ...},
  optionally "c2st": {"accuracy", "stderr"} and "coverage": {"female_share", "training_female_share", "n"}}, from the trainer or from a later evaluation of its snapshots; a run
  that continued a model (`--init-from`) adds "images_seen_total" / "cpu_seconds_total", and its curve starts there.
A resumed run repeats the steps after its last checkpoint: the last record per step is kept (for eval records, later
lines' fields override earlier ones, so a separate C2ST line for a step joins the trainer's face rate for it).

`read_run(folder)` -> RunLog; `runs_from_json(file)` -> the RunLogs of an earlier `curves --json`; `eval_series(run)` -> columns; `plot_curves(runs, "curves.png")` draws
(a) face rate vs images seen, (b) face rate vs CPU hours, (c) C2ST accuracy vs images seen and (d) the share of
women among the samples vs images seen, beside the training faces' share (each when any run has it).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..checkpoint import CONFIG_FILE
from .metrics import FEMALE_GAP_TARGET
from ..images import atomic_path
from ..training.loop import LOG_FILE, MODEL_DIR

FACE_KEY = "p>=0.999"  # the face rate drawn: share of samples with an MTCNN face probability >= 0.999
PANEL_SIZE = (450, 400)  # default pixels per panel (w, h)
MAX_SIDE = 8000  # pixels


@dataclass
class RunLog:
    path: Path
    family: str | None
    steps: list[dict[str, Any]]  # step records, the last one written per step, by step
    evals: list[dict[str, Any]]  # eval records merged per step (later lines win), by step
    starts: list[dict[str, Any]] = field(default_factory=list)  # one per (re)start, in file order
    skipped_lines: int = 0  # lines that are not a JSON object (e.g. cut short by a crash)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def label(self) -> str:
        return f"{self.name} ({self.family})" if self.family else self.name


def read_run(folder: str | os.PathLike) -> RunLog:
    """Read a training run folder's log.jsonl. Raises FileNotFoundError naming the run if it or its log is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder does not exist: {folder}")
    log = folder / LOG_FILE
    if not log.is_file():
        raise FileNotFoundError(f"run {folder} has no {LOG_FILE} (is it a training run folder?)")
    steps: dict[int, dict] = {}
    evals: dict[int, dict] = {}
    starts: list[dict] = []
    skipped = 0
    with log.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if not isinstance(rec, dict):
                skipped += 1
                continue
            kind = rec.get("kind")
            if kind == "start":
                starts.append(rec)
            elif kind in ("eval", None):
                step = rec.get("step")
                if not isinstance(step, int):
                    skipped += 1
                    continue
                if kind is None:
                    steps[step] = rec
                else:
                    evals.setdefault(step, {}).update(rec)
            # other kinds: not drawn
    family = next((s["family"] for s in reversed(starts) if s.get("family")), None) or _model_family(folder)
    return RunLog(path=folder, family=family, steps=[steps[k] for k in sorted(steps)],
                  evals=[evals[k] for k in sorted(evals)], starts=starts, skipped_lines=skipped)


def runs_from_json(path: str | os.PathLike) -> list[RunLog]:
    """The runs of an earlier `curves --json` file, rebuilt as RunLogs whose eval records give back the same
    columns (`eval_series`): run folders live outside the checkout and go with the machine, the committed JSON
    stays, so lost runs can still be drawn beside new ones. Raises ValueError naming the file if it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        runs = data["runs"]
        if not isinstance(runs, list):
            raise TypeError("'runs' is not a list")
        out = [RunLog(path=Path(r["path"]), family=r.get("family"), steps=[], evals=_records(r["eval"]))
               for r in runs]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a curves --json file ({type(e).__name__}: {e})") from None
    return out


def _records(cols: dict[str, list]) -> list[dict[str, Any]]:
    """Eval records from `eval_series` columns (lineage already added: the totals are the records' own values)."""
    records = []
    for row in (dict(zip(cols, values)) for values in zip(*cols.values())):  # one row per step; absent keys: None
        rec: dict[str, Any] = {"kind": "eval", "step": row["step"], "images_seen": row.get("images_seen")}
        if row.get("cpu_hours") is not None:
            rec["cpu_seconds"] = row["cpu_hours"] * 3600
        if row.get("face_rate") is not None:
            rec["face_rate"] = {FACE_KEY: row["face_rate"]}
        if row.get("c2st") is not None:
            rec["c2st"] = {"accuracy": row["c2st"], "stderr": row.get("c2st_stderr"), "n_per_class": row.get("c2st_n")}
        share, se = row.get("female_share"), row.get("female_share_stderr")
        if share is not None:
            n = round(share * (1 - share) / se**2) if se else None  # stderr = sqrt(p (1 - p) / n)
            rec["coverage"] = {"female_share": share, "n": n, "training_female_share": row.get("training_female_share")}
        records.append(rec)
    return records


def _model_family(folder: Path) -> str | None:
    """The family of the run's exported model, for logs written before start records existed."""
    try:
        family = json.loads((folder / MODEL_DIR / CONFIG_FILE).read_text()).get("family")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return family if isinstance(family, str) else None


def _number(value: Any) -> int | float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def eval_series(run: RunLog, face_key: str = FACE_KEY) -> dict[str, list]:
    """The run's eval records as parallel columns, one entry per evaluated step; None where a record lacks a value.
    Keys: step, images_seen, cpu_hours, face_rate (at `face_key`), c2st (accuracy), c2st_stderr, c2st_n (images per
    class), female_share, female_share_stderr (binomial), training_female_share."""
    cols: dict[str, list] = {k: [] for k in ("step", "images_seen", "cpu_hours", "face_rate", "c2st", "c2st_stderr", "c2st_n",
                                             "female_share", "female_share_stderr", "training_female_share")}
    before_images, before_cpu = _lineage_offsets(run)
    for rec in run.evals:
        cpu = _number(rec.get("cpu_seconds"))
        cpu = cpu + before_cpu if cpu is not None else None
        images = _number(rec.get("images_seen"))
        face = rec.get("face_rate") if isinstance(rec.get("face_rate"), dict) else {}
        c2st = rec.get("c2st") if isinstance(rec.get("c2st"), dict) else {}
        cov = rec.get("coverage") if isinstance(rec.get("coverage"), dict) else {}
        share, n = _number(cov.get("female_share")), _number(cov.get("n"))
        cols["step"].append(rec["step"])
        cols["images_seen"].append(images + before_images if images is not None else None)
        cols["cpu_hours"].append(cpu / 3600 if cpu is not None else None)
        cols["face_rate"].append(_number(face.get(face_key)))
        cols["c2st"].append(_number(c2st.get("accuracy")))
        cols["c2st_stderr"].append(_number(c2st.get("stderr")))
        cols["c2st_n"].append(_number(c2st.get("n_per_class")))
        cols["female_share"].append(share)
        cols["female_share_stderr"].append((share * (1 - share) / n) ** 0.5 if share is not None and n else None)
        cols["training_female_share"].append(_number(cov.get("training_female_share")))
    return cols


def _lineage_offsets(run: RunLog) -> tuple[float, float]:
    """(images, CPU seconds) the weights had seen before the run began (`train --init-from`): eval records of such a
    run carry `images_seen_total` / `cpu_seconds_total`, and the difference applies to all its records, including
    those written before the trainer kept totals."""
    images = cpu = 0.0
    for rec in run.evals:
        seen, total = _number(rec.get("images_seen")), _number(rec.get("images_seen_total"))
        if seen is not None and total is not None:
            images = total - seen
            c, ct = _number(rec.get("cpu_seconds")), _number(rec.get("cpu_seconds_total"))
            cpu = ct - c if c is not None and ct is not None else 0.0
            break
    return images, cpu


def _pairs(cols: dict[str, list], x: str, y: str, keep: Sequence[bool] | None = None) -> tuple[list[float], list[float]]:
    pts = [(a, b) for a, b, k in zip(cols[x], cols[y], keep or [True] * len(cols[x]))
           if a is not None and b is not None and k]
    return [a for a, _ in pts], [b for _, b in pts]


def _c2st_groups(series: Sequence[dict[str, list]]) -> list[int | None]:
    """The test sizes (images per class) among the runs' C2ST points, largest first: a small test reads lower (its
    classifier learns less), so points of different sizes are drawn as separate lines, never joined."""
    sizes = {n for c in series for n, v in zip(c["c2st_n"], c["c2st"]) if v is not None}
    return sorted(sizes, key=lambda n: -1 if n is None else n, reverse=True)


def check_runs(runs: Sequence[RunLog], face_key: str = FACE_KEY) -> list[str]:
    """Warnings for runs with nothing to draw; ValueError if no run has any eval record."""
    if not runs:
        raise ValueError("no runs given")
    if not any(r.evals for r in runs):
        raise ValueError(f"no eval records in {', '.join(str(r.path / LOG_FILE) for r in runs)}: nothing to draw")
    warnings = []
    for r in runs:
        if not r.evals:
            warnings.append(f"run {r.path} has no eval records ({len(r.steps)} step records): drawn without points")
        elif not any(v is not None for v in eval_series(r, face_key)["face_rate"]):
            why = next((e["face_rate_error"] for e in r.evals if e.get("face_rate_error")), None)
            warnings.append(f"run {r.path} has {len(r.evals)} eval records but no face rate at {face_key}"
                            + (f" ({why})" if why else ""))
        if r.skipped_lines:
            warnings.append(f"run {r.path}: skipped {r.skipped_lines} unreadable line(s) in {LOG_FILE}")
    return warnings


def panels(runs: Sequence[RunLog]) -> list[str]:
    """The panels drawn for these runs: face rate vs images and vs CPU hours, plus C2ST and coverage when any run
    has them."""
    series = [eval_series(r) for r in runs]
    has = {k: any(v is not None for c in series for v in c[k]) for k in ("c2st", "female_share")}
    return (["face_rate_images", "face_rate_cpu"] + (["c2st_images"] if has["c2st"] else [])
            + (["female_share_images"] if has["female_share"] else []))


def default_size(n_panels: int) -> tuple[int, int]:
    return PANEL_SIZE[0] * n_panels, PANEL_SIZE[1]


def parse_size(text: str) -> tuple[int, int]:
    """'1200x400' -> (1200, 400) pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be WIDTHxHEIGHT in pixels, e.g. 1350x400, got {text!r}") from None
    if not (100 <= w <= MAX_SIDE and 100 <= h <= MAX_SIDE):
        raise ValueError(f"size sides must be in 100..{MAX_SIDE} pixels, got {w}x{h}")
    return w, h


def curves_json(runs: Sequence[RunLog], face_key: str = FACE_KEY, real_rate: float | None = None) -> dict[str, Any]:
    """What the picture shows, as data: per run its label, family and eval columns (see `eval_series`)."""
    return {"face_rate_key": face_key, "real_rate": real_rate,
            "runs": [{"name": r.name, "path": str(r.path), "family": r.family, "label": r.label,
                      "step_records": len(r.steps), "last_step": r.steps[-1]["step"] if r.steps else None,
                      "restarts": max(len(r.starts) - 1, 0), "eval": eval_series(r, face_key)} for r in runs]}


def plot_curves(runs: Sequence[RunLog], out: str | os.PathLike, *, face_key: str = FACE_KEY,
                real_rate: float | None = None, size: tuple[int, int] | None = None, dpi: int = 100) -> Path:
    """Draw the runs' learning curves into a PNG of `size` (w, h) pixels, written atomically. Returns the path."""
    from matplotlib.backends.backend_agg import (
        FigureCanvasAgg,  # object API: no pyplot, no global backend state
    )
    from matplotlib.figure import Figure

    check_runs(runs, face_key)
    kinds = panels(runs)
    w, h = size or default_size(len(kinds))
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    series = [eval_series(r, face_key) for r in runs]
    titles = {"face_rate_images": "(a) face rate vs images seen", "face_rate_cpu": "(b) face rate vs CPU hours",
              "c2st_images": "(c) C2ST accuracy vs images seen", "female_share_images": "(d) share of women vs images seen"}
    for ax, kind in zip(axes, kinds):
        x, y = {"face_rate_images": ("images_seen", "face_rate"), "face_rate_cpu": ("cpu_hours", "face_rate"),
                "c2st_images": ("images_seen", "c2st"), "female_share_images": ("images_seen", "female_share")}[kind]
        groups = _c2st_groups(series) if kind == "c2st_images" else [None]
        for i, (run, cols) in enumerate(zip(runs, series)):
            for g, size in enumerate(groups):
                keep = [n == size for n in cols["c2st_n"]] if kind == "c2st_images" else None
                xs, ys = _pairs(cols, x, y, keep)
                if kind == "c2st_images" and not ys:
                    continue
                if x == "images_seen":
                    xs = [v / 1000 for v in xs]
                label = run.label if run.evals else f"{run.label}: no evals"
                if len(groups) > 1:
                    label += f" ({size} per class)" if size else " (size not logged)"
                ax.plot(xs, ys, marker="o", markersize=3, color=f"C{i % 10}", label=label,
                        linestyle="-" if g == 0 else ":", alpha=1.0 if g == 0 else 0.6)
                if kind in ("c2st_images", "female_share_images"):
                    err = [(a / 1000, b, e) for a, b, e, k in zip(cols["images_seen"], cols[y], cols[f"{y}_stderr"],
                                                                 keep or [True] * len(cols[y]))
                           if a is not None and b is not None and e is not None and k]
                    if err:
                        ax.errorbar([a for a, _, _ in err], [b for _, b, _ in err], yerr=[e for _, _, e in err],
                                    fmt="none", ecolor=f"C{i % 10}", alpha=0.6)
        if kind == "c2st_images":
            ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance (0.5)")
            ax.set_ylabel("C2ST accuracy (0.5 = indistinguishable)")
            ax.set_ylim(min([0.45] + [v - 0.05 for c in series for v in c["c2st"] if v is not None]), 1.02)
        elif kind == "female_share_images":  # the target: within FEMALE_GAP_TARGET of the training faces' share
            for share in sorted({round(v, 3) for c in series for v in c["training_female_share"] if v is not None}):
                ax.axhline(share, color="black", linestyle="--", linewidth=1,
                           label=f"training faces ({share:.3f}) +-{FEMALE_GAP_TARGET:g}")
                ax.axhspan(share - FEMALE_GAP_TARGET, share + FEMALE_GAP_TARGET, color="gray", alpha=0.12)
            ax.set_ylabel("share of women (attribute classifier)")
            ax.set_ylim(0, 1.02)
        else:
            if real_rate is not None:
                ax.axhline(real_rate, color="black", linestyle="--", linewidth=1, label="real faces")
            ax.set_ylabel(f"face rate ({face_key})")
            ax.set_ylim(0, 1.02)
        ax.set_xlabel("CPU hours" if x == "cpu_hours" else "images seen (kimg)")
        ax.set_title(titles[kind], fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)  # below: never on a curve
    path, tmp = atomic_path(out)
    try:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
