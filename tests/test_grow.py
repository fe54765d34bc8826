"""Growing a StyleGAN2 to twice its resolution (training/grow.py) and `train --init-from` a half-resolution model."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dgf_core.checkpoint import load_model, read_config, save_model
from dgf_core.models.stylegan import Discriminator, Generator, StyleGAN2Config
from dgf_core.training.grow import check_growable, grow_discriminator, grow_generator
from dgf_core.training.loop import TrainOptions, train

SMALL = StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
                        d_channel_base=256, d_channel_max=16)
BIG = dataclasses.replace(SMALL, resolution=32)


def _trained_like(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights away from their init (biases too), as in a trained model, so the copy is tested on more than zeros."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return module.eval()


def test_grown_generator_draws_the_small_ones_image_upsampled():
    torch.manual_seed(0)
    small, big = _trained_like(Generator(SMALL), 1), Generator(BIG).eval()
    grow_generator(small, big)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out, ref = big(z), big.upsample(small(z))
    assert out.shape == (4, 3, 32, 32)
    torch.testing.assert_close(out, ref)
    # the new block is there to learn: its convolutions are not zero, only its ToRGB is
    assert big.layers[-1].conv.weight.abs().sum() > 0 and big.to_rgbs[-1].conv.weight.abs().sum() == 0


def test_grown_discriminator_scores_as_the_small_one_on_the_downsampled_image():
    torch.manual_seed(0)
    small, big, fresh = _trained_like(Discriminator(SMALL), 3), Discriminator(BIG).eval(), Discriminator(BIG).eval()
    grow_discriminator(small, big)
    g = torch.Generator().manual_seed(4)
    x = F.interpolate(torch.rand(16, 3, 8, 8, generator=g) * 2 - 1, size=32, mode="bilinear", align_corners=False)
    with torch.no_grad():
        ref = small(F.avg_pool2d(x, 2))
        grown, other = big(x), fresh(x)

    def corr(a, b):
        return torch.corrcoef(torch.stack([a, b]))[0, 1].item()

    assert corr(grown, ref) > 0.97 and (grown - ref).abs().mean() < 0.1 * ref.abs().mean() + 0.05
    assert abs(corr(other, ref)) < 0.9  # an ungrown D is no such copy (the check above can fail)
    torch.testing.assert_close(big.final_linear.weight, small.final_linear.weight)
    torch.testing.assert_close(big.blocks[1].conv1.weight, small.blocks[0].conv1.weight)


def test_growing_refuses_other_architectures_and_other_factors():
    with pytest.raises(ValueError, match="to 32 px only"):
        check_growable(SMALL, dataclasses.replace(SMALL, resolution=64))
    with pytest.raises(ValueError, match="channel_max"):
        check_growable(SMALL, dataclasses.replace(BIG, channel_max=8))
    narrow = dataclasses.replace(SMALL, d_channel_base=64, d_channel_max=8)
    with pytest.raises(ValueError, match="fewer than the 6"):
        check_growable(narrow, dataclasses.replace(narrow, resolution=32))


def test_train_init_from_a_half_resolution_stylegan2_grows_it(image_folder, tmp_path):
    torch.manual_seed(0)
    g, d = _trained_like(Generator(SMALL), 5), _trained_like(Discriminator(SMALL), 6)
    src = save_model(tmp_path / "small", "stylegan2", SMALL, g, d, {"description": "small", "images_seen": 1000},
                     dtype=None)
    out = tmp_path / "run"
    model_dir = train(TrainOptions(data=[str(image_folder)], out=str(out), family="stylegan2", resolution=32,
                                   batch_size=4, steps=1, lr=0.0, eval_every=0, init_from=str(src), progress=False,
                                   sample_seeds=2, log_every=1, sample_every=10, checkpoint_every=10, device="cpu"))
    grown = load_model(model_dir).generator
    assert grown.cfg.resolution == 32 and read_config(model_dir)["config"]["channel_base"] == 256
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():  # lr 0: the exported G_ema is the grown generator itself
        torch.testing.assert_close(grown(z), grown.upsample(g(z)), atol=1e-2, rtol=0)  # exported in fp16
    with pytest.raises(ValueError, match="to 32 px only"):
        train(TrainOptions(data=[str(image_folder)], out=str(tmp_path / "r64"), family="stylegan2", resolution=64,
                           batch_size=4, steps=1, init_from=str(src), progress=False, device="cpu"))


def test_a_run_on_an_aligned_set_takes_its_framing_as_the_crop_recipe(image_folder, tmp_path):
    from dgf_core.checkpoint import write_json_atomic

    summary = {"format": "dgf-aligned-set/1", "recipe": "utkface-chip", "resolution": 32, "kept": 24,
               "max_outside": 0.15, "by_status": {"ok": 24}}
    write_json_atomic(summary, image_folder / "summary.json")
    small = {k: v for k, v in dataclasses.asdict(SMALL).items() if k != "resolution"}
    run = dict(family="stylegan2", resolution=16, batch_size=4, steps=1, eval_every=0, model=small, progress=False,
               sample_seeds=2, sample_every=10, checkpoint_every=10, device="cpu")
    model_dir = train(TrainOptions(data=[str(image_folder)], out=str(tmp_path / "run"), **run))
    card = read_config(model_dir)["card"]
    assert card["crop_recipe"] == "utkface-chip" and card["aligned_sets"][str(image_folder)]["kept"] == 24
    plain = tmp_path / "plain"
    plain.mkdir()
    for p in sorted(image_folder.rglob("*.jpg"))[:8]:
        (plain / f"plain-{p.name}").write_bytes(p.read_bytes())
    with pytest.raises(ValueError, match="mixes framings"):
        train(TrainOptions(data=[str(image_folder), str(plain)], out=str(tmp_path / "mixed"), **run))
