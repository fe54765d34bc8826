"""Model families: each maps a name to its config dataclass and the constructors of its networks.

A checkpoint stores the family name and the config, so `dgf_core.checkpoint.load_model` can rebuild any
family registered here. New architectures register one `ModelFamily` and every tool (CLI, app, metrics)
sees them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

from torch import nn

from .dcgan import DCGANConfig
from .dcgan import Discriminator as DCGANDiscriminator
from .dcgan import Generator as DCGANGenerator
from .stylegan import Discriminator as StyleGAN2Discriminator
from .stylegan import Generator as StyleGAN2Generator
from .stylegan import StyleGAN2Config
from .upscaler import Discriminator as UpscalerDiscriminator
from .upscaler import Generator as UpscalerGenerator
from .upscaler import UpscalerConfig


@dataclass(frozen=True)
class ModelFamily:
    name: str
    config_cls: type
    generator: Callable[[Any], nn.Module]
    discriminator: Callable[[Any], nn.Module] | None
    kind: str = "generator"  # "generator" (latent -> image) or "upscaler" (image -> image)

    def make_config(self, values: dict[str, Any]) -> Any:
        known = {f.name for f in fields(self.config_cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {self.name} config fields {unknown}; known: {sorted(known)}")
        return self.config_cls(**values)


FAMILIES: dict[str, ModelFamily] = {}


def register(family: ModelFamily) -> ModelFamily:
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> ModelFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


register(ModelFamily("dcgan", DCGANConfig, DCGANGenerator, DCGANDiscriminator))
register(ModelFamily("stylegan2", StyleGAN2Config, StyleGAN2Generator, StyleGAN2Discriminator))
register(ModelFamily("upscaler", UpscalerConfig, UpscalerGenerator, UpscalerDiscriminator, kind="upscaler"))
