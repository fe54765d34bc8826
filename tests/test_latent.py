import numpy as np
import pytest
import torch

from dgf_core.latent import (
    SEED_MAX,
    SeedError,
    check_seed,
    check_truncation,
    keyframe_path,
    parse_seeds,
    seed_to_z,
    seeds_to_z,
    slerp,
    truncate,
)


def test_seed_names_a_latent():
    z = seed_to_z(42, 100)
    assert z.shape == (100,) and z.dtype == torch.float32
    assert torch.equal(z, seed_to_z(42, 100))
    assert not torch.equal(z, seed_to_z(43, 100))
    # stored value: torch's CPU generator is portable, so this holds on any machine
    np.testing.assert_allclose(z[:4].numpy(), [1.9269152879714966, 1.4872840642929077, 0.9007171988487244, -2.1055209636688232], rtol=0, atol=1e-7)


def test_seeds_to_z_rows_match_single_draws():
    z = seeds_to_z([5, 0, SEED_MAX], 16)
    assert torch.equal(z[0], seed_to_z(5, 16)) and torch.equal(z[2], seed_to_z(SEED_MAX, 16))


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "7", None, True, [1], float("nan")])
def test_bad_seeds_are_clear_errors(bad):
    with pytest.raises(SeedError, match="integer in 0..4294967295"):
        check_seed(bad)


def test_integral_values_accepted():
    assert check_seed(np.int64(7)) == 7 and check_seed(7.0) == 7 and check_seed(SEED_MAX) == SEED_MAX


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,7, 42") == [1, 7, 42]
    assert parse_seeds("5,0-1") == [5, 0, 1]
    for bad in ["", "a", "3-1", "1,,2", "-5", "1.5", f"{2**32}"]:
        with pytest.raises(SeedError):
            parse_seeds(bad)
    with pytest.raises(SeedError, match="too many"):
        parse_seeds("0-999999", max_count=100)


def test_truncation():
    z = torch.randn(4, 8)
    assert torch.equal(truncate(z, 1.0), z)
    assert torch.equal(truncate(z, 0.0), torch.zeros_like(z))
    c = torch.ones(8)
    torch.testing.assert_close(truncate(z, 0.5, c), c + 0.5 * (z - c))
    for bad in [-0.1, 1.5, "x", True]:
        with pytest.raises(ValueError):
            check_truncation(bad)


def test_slerp_endpoints_and_norm():
    a, b = torch.randn(2, 64).unbind(0)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b, atol=1e-5, rtol=1e-5)
    a2 = a / a.norm() * 8
    b2 = b / b.norm() * 8
    assert abs(slerp(a2, b2, 0.5).norm().item() - 8) < 1e-3  # stays on the sphere, unlike lerp


def test_keyframe_path():
    keys = torch.randn(3, 8)
    p = keyframe_path(keys, 4)
    assert p.shape == (2 * 4 + 1, 8)
    assert torch.equal(p[0], keys[0]) and torch.equal(p[-1], keys[-1])
    torch.testing.assert_close(p[4], keys[1], atol=1e-5, rtol=1e-5)
    loop = keyframe_path(keys, 4, loop=True, method="lerp", easing="ease-in-out")
    assert loop.shape == (12, 8) and torch.equal(loop[0], keys[0])
    with pytest.raises(ValueError):
        keyframe_path(keys[:1], 4)
    with pytest.raises(ValueError):
        keyframe_path(keys, 4, easing="bounce")
