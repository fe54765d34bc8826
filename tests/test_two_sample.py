"""The classifier two-sample test on tiny synthetic image sets (16x16, CPU, seeded)."""
import re

import pytest
import torch

from dgf_core.training.two_sample import PAIRED_MIN_FOLDS, binomial_p_value, c2st, paired_stderr, pool_repeats


def noise(n: int, seed: int, size: int = 16) -> torch.Tensor:
    """(n, 3, size, size) uint8 smooth random images: 4x4 noise upsampled."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 4, 4, generator=g) * 255
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).round().to(torch.uint8)


def striped(n: int, seed: int) -> torch.Tensor:
    """The same kind of images with every other row darkened: a texture a classifier can learn."""
    x = noise(n, seed).clone()
    x[:, :, ::2] //= 2
    return x


def test_different_distributions_are_told_apart():
    r = c2st(noise(60, 1), striped(75, 2), folds=3, epochs=3, seed=0)
    assert r["accuracy"] > 0.9 and r["p_value"] < 1e-6
    assert r["n_per_class"] == 60  # the larger set is subsampled to the smaller's size
    assert len(r["fold_accuracies"]) == r["folds"] == 3 and 0 <= r["stderr"] < 0.1


def test_two_draws_of_one_distribution_are_near_chance():
    r = c2st(noise(60, 1), noise(60, 2), folds=3, epochs=3, seed=0)
    assert 0.3 < r["accuracy"] < 0.7, r  # 120 tested images: one standard error is about 0.05
    assert r["p_value"] > 1e-3


def test_same_seed_same_result_and_no_global_rng():
    a, b = noise(40, 1), striped(40, 2)
    torch.manual_seed(123)
    r1 = c2st(a, b, folds=3, epochs=2, seed=7)
    state = torch.random.get_rng_state()
    torch.manual_seed(456)
    r2 = c2st(a, b, folds=3, epochs=2, seed=7)
    r1.pop("seconds"), r2.pop("seconds"), r1.pop("cpu_seconds"), r2.pop("cpu_seconds")
    assert r1 == r2 and r1["threads"] == 1
    torch.manual_seed(123)
    assert torch.equal(state, torch.random.get_rng_state())  # c2st drew nothing from the global generator


@pytest.mark.parametrize("a, b, kw, message", [
    (noise(10, 0).float(), noise(10, 1), {}, "uint8"),
    (noise(10, 0)[:, :1], noise(10, 1)[:, :1], {}, "(N, 3, H, W)"),
    (noise(10, 0)[0], noise(10, 1), {}, "(N, 3, H, W)"),
    (noise(10, 0), noise(10, 1, size=24), {}, "differ in shape"),
    (noise(10, 0, size=4), noise(10, 1, size=4), {}, "at least 8x8"),
    (noise(10, 0), noise(10, 1), {"folds": 1}, "folds"),
    (noise(10, 0), noise(10, 1), {"epochs": 0}, "epochs"),
    (noise(4, 0), noise(10, 1), {}, "at least 5 images"),
    (noise(10, 0), noise(10, 1), {"threads": 0}, "threads"),
])
def test_bad_arguments_are_clear_errors(a, b, kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        c2st(a, b, **kw)


def test_thread_count_is_restored():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        r = c2st(noise(10, 0), noise(10, 1), epochs=1, threads=1)
        assert r["threads"] == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_binomial_p_value():
    assert binomial_p_value(50, 100) == pytest.approx(0.5398, abs=1e-3)
    assert binomial_p_value(100, 100) == pytest.approx(0.5**100)
    assert binomial_p_value(0, 100) == pytest.approx(1.0)


def test_repeats_pool_into_one_result_with_a_smaller_standard_error():
    b = striped(40, 9)
    runs = [c2st(noise(40, 10 + r), b, folds=4, epochs=2, seed=r) for r in range(3)]
    pooled = pool_repeats(runs)
    folds = torch.tensor([a for r in runs for a in r["fold_accuracies"]], dtype=torch.float64)
    assert pooled["accuracy"] == pytest.approx(float(folds.mean())) == pytest.approx(sum(r["accuracy"] for r in runs) / 3)
    assert pooled["stderr"] == pytest.approx(float(folds.std()) / 12 ** 0.5) and len(pooled["fold_accuracies"]) == 12
    assert pooled["p_value"] == max(r["p_value"] for r in runs)  # each repeat is a valid test: the largest is conservative
    assert [r["accuracy"] for r in pooled["repeats"]] == [r["accuracy"] for r in runs] and pooled["seed"] == [0, 1, 2]
    assert pool_repeats(runs[:1]) is runs[0]  # one test is its own result
    with pytest.raises(ValueError, match="no results"):
        pool_repeats([])


def test_paired_stderr_needs_the_same_folds():
    b = striped(40, 9)
    old = pool_repeats([c2st(noise(40, 10 + r), b, folds=4, epochs=2, seed=r) for r in range(3)])
    new = pool_repeats([c2st(striped(40, 20 + r), b, folds=4, epochs=2, seed=r) for r in range(3)])
    d = torch.tensor(new["fold_accuracies"], dtype=torch.float64) - torch.tensor(old["fold_accuracies"], dtype=torch.float64)
    assert 12 >= PAIRED_MIN_FOLDS and paired_stderr(old, new) == pytest.approx(float(d.std()) / 12 ** 0.5)
    other_seeds = pool_repeats([c2st(striped(40, 20 + r), b, folds=4, epochs=2, seed=r + 1) for r in range(3)])
    assert paired_stderr(old, other_seeds) is None  # other folds and nets: nothing to pair
    one = c2st(noise(40, 10), b, folds=4, epochs=2, seed=0)
    assert paired_stderr(one, c2st(striped(40, 20), b, folds=4, epochs=2, seed=0)) is None  # 4 folds: too few
