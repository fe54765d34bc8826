"""Speed benchmarks: `python -m dgf_core bench [--only NAME ...] [--json FILE]`.

Each benchmark is a function registered with `@benchmark("name")`, taking a `BenchContext` and returning
a flat dict of measurements (seconds, images/s, ...) plus, where the project has a target, the target
and whether it was met. Targets are checked here, by measurement, never by timed tests.
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

BENCHMARKS: dict[str, Callable[["BenchContext"], dict[str, Any]]] = {}


def benchmark(name: str):
    def deco(fn):
        BENCHMARKS[name] = fn
        return fn

    return deco


@dataclass
class BenchContext:
    model: str = "dcgan-celeba64"  # generator used by the inference benchmarks
    data: list[str] = field(default_factory=list)  # image folders for training throughput (synthetic if empty)
    device: str = "auto"
    repeats: int = 50
    train_steps: int = 10
    quick: bool = False  # fewer repeats (for tests)
    _tmp: Path | None = None

    def tmp(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="dgf-bench-"))
        return self._tmp


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 3, sync: bool = False) -> float:
    """Median wall time of fn() in seconds over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "gpu": gpu,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@benchmark("generate")
def bench_generate(ctx: BenchContext) -> dict[str, Any]:
    """CPU latency of one 64x64 image (latent draw included) and of a batch of 64."""
    from .latent import seeds_to_z
    from .pipeline import FacePipeline

    pipe = FacePipeline.from_pretrained(ctx.model, device="cpu")
    reps = 5 if ctx.quick else ctx.repeats
    one = median_time(lambda: pipe.generate([42]), reps)
    batch = median_time(lambda: pipe.generate(list(range(64))), max(3, reps // 5))
    ref_g = pipe.model.generator  # the plain eval-mode module (reference path, no batch-norm folding)
    with torch.inference_mode():
        ref_one = median_time(lambda: ref_g(seeds_to_z([42], pipe.z_dim)), reps)
    return {"model": pipe.model.name, "resolution": pipe.resolution, "one_image_ms": one * 1e3,
            "one_image_reference_path_ms": ref_one * 1e3, "batch64_ms": batch * 1e3,
            "batch64_images_per_s": 64 / batch, "target_one_image_ms": 5.0 if pipe.resolution <= 64 else None,
            "target_met": (one * 1e3 <= 5.0) if pipe.resolution <= 64 else None}
