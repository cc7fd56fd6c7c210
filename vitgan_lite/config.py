"""One config for the whole course: a dataclass with paper defaults and named presets.

Only the top level (``Generator.from_config``, ``Discriminator.from_config``, the trainer and the CLI)
reads a ``Config``; leaf modules take explicit keyword arguments.

Presets
-------
``paper-cifar10``        ViTGAN's CIFAR-10 setting (Lee et al., ICLR 2022, appendix tables).
``seed-report-cifar10``  The student report that seeded this course: dim 300, latent 128, 5 heads,
                         3 blocks, MLP ratio 4, patch 4, batch 32, lr 2e-3, betas (0, 0.99),
                         lambda_real = lambda_fake = 10, 100 epochs.
``tiny-cpu``             A baby model that learns on a 2-core CPU in about ten minutes (nanoGPT's
                         "baby GPT" idea), with the course's small-scale recipe: bCR off (lesson 11).
``cpu-hour``             tiny-cpu trained for about an hour, with cFD logged (lesson 11).

Every field's comment says where its default comes from: the paper, the authors' official code
(mlpc-ucsd/ViTGAN), or a course choice; lesson 11 tabulates the presets with their sources.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

AUGMENTATIONS = ("color", "translation", "cutout")


class ConfigError(ValueError):
    """A config value that cannot work; the message names the field and what to change."""


@dataclass
class Config:
    """Every knob of a ViTGAN run. Defaults are the paper's CIFAR-10 setting."""

    preset: str = "paper-cifar10"

    # data
    data: str = "cifar10"  # "cifar10" (torchvision download) or a path to a local image folder
    image_size: int = 32  # CIFAR-10
    channels: int = 3  # RGB

    # generator (paper, CIFAR-10 architecture table)
    latent_dim: int = 384  # z
    style_dim: int = 384  # w, output of the mapping network
    mapping_layers: int = 4  # z -> w depth: course choice, not in the paper; deviation: official code uses 8
    mapping_lr_mul: float = 0.01  # StyleGAN2 mapping-network learning-rate multiplier
    g_patch_size: int = 4  # P: 32 / 4 = 8 x 8 = 64 tokens
    g_dim: int = 384  # token width of the generator transformer
    g_depth: int = 4  # L generator blocks
    g_num_heads: int = 6
    g_mlp_ratio: float = 4.0  # MLP size 1536 = 4 * 384
    g_fourier_dim: int = 384  # width of E_fou, the Fourier features of pixel coordinates
    g_decoder_dim: int = 384  # hidden width of the modulated SIREN patch decoder
    g_demodulate: bool = True  # StyleGAN2 weight demodulation in the decoder
    g_sln_gain: float = 1.0  # w's strength in each SLN at init: official code; 0.1 collapsed (lesson 11)
    g_fourier_freq: float = 2.1213  # E_fou initial frequency bound: CIPS LFF sqrt(9/2) (course choice)

    # discriminator (paper, CIFAR-10 architecture table)
    d_patch_size: int = 4  # stride of the patch embedding
    d_overlap: int = 2  # o: each patch sees o extra pixels on every side (kernel P + 2o)
    d_dim: int = 192
    d_depth: int = 4
    d_num_heads: int = 3
    d_mlp_ratio: float = 4.0  # MLP size 768 = 4 * 192
    d_norm: str = "isn"  # "isn" (paper), "sn" (plain spectral norm) or "none"
    d_attn_init: str = "unit-logit"  # W_qk init: course choice (mean logit -1 at init, lesson 11) or "xavier"

    # optimisation (paper: Adam, lr 2e-3, betas (0, 0.99))
    batch_size: int = 128
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    beta1: float = 0.0
    beta2: float = 0.99
    equalized_lr: bool = False  # True: lr / sqrt(fan_in) on plain Linear/Conv weights, as the official code's
    # EqualLinear layers do; off by default: at tiny-cpu scale it slowed G more than it steadied D (lesson 11)
    steps: int = 500_000  # total D+G iterations
    ema_decay: float = 0.999  # EMA of G, which every sample comes from: course choice (StyleGAN2-like)

    # augmentation and regularisation (paper: DiffAugment + bCR, lambda = 10)
    # deviation: always applied; the paper adds scaling, each op with prob. 0.8 (official: cutout 0.3)
    diffaug_policy: str = "color,translation,cutout"
    bcr_real: float = 10.0  # lambda_real: paper (official code: 1, between two augmented views)
    bcr_fake: float = 10.0  # lambda_fake: paper

    # bookkeeping
    seed: int = 0
    log_every: int = 100
    sample_every: int = 2_000
    ckpt_every: int = 5_000
    keep_ckpts: int = 3
    fid_every: int = 0  # 0: only at the end
    cfd_every: int = 0  # course metric cFD / cKID (vitgan_lite.quality, offline) every N steps; 0: never
    cfd_num_samples: int = 2_000  # samples of G_ema per cFD evaluation (cFD depends on it: compare at one N)
    fid_num_samples: int = 50_000  # the standard protocol
    amp: str = "auto"  # "auto" (bf16 on CUDA), "bf16" or "none"
    compile: bool = False  # torch.compile on a GPU

    def validate(self) -> Config:
        """Refuse a config that cannot work, naming the field. Returns self."""
        if self.image_size % self.g_patch_size:
            raise ConfigError(
                f"image_size {self.image_size} is not divisible by g_patch_size {self.g_patch_size}: "
                "pick a patch size that divides the image size"
            )
        if self.image_size % self.d_patch_size:
            raise ConfigError(
                f"image_size {self.image_size} is not divisible by d_patch_size {self.d_patch_size}: "
                "pick a patch size that divides the image size"
            )
        for dim_name, heads_name in (("g_dim", "g_num_heads"), ("d_dim", "d_num_heads")):
            dim, heads = getattr(self, dim_name), getattr(self, heads_name)
            if heads <= 0 or dim % heads:
                raise ConfigError(
                    f"{dim_name} {dim} is not divisible by {heads_name} {heads}: "
                    "the width must split evenly across the heads"
                )
        for name in ("lr_g", "lr_d", "g_fourier_freq", "g_sln_gain"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("batch_size", "steps", "latent_dim", "style_dim", "g_depth", "d_depth"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.d_norm not in ("isn", "sn", "none"):
            raise ConfigError(f"d_norm must be 'isn', 'sn' or 'none', got {self.d_norm!r}")
        if self.d_attn_init not in ("unit-logit", "xavier"):
            raise ConfigError(f"d_attn_init must be 'unit-logit' or 'xavier', got {self.d_attn_init!r}")
        for aug in filter(None, (a.strip() for a in self.diffaug_policy.split(","))):
            if aug not in AUGMENTATIONS:
                raise ConfigError(
                    f"diffaug_policy has unknown augmentation {aug!r}: choose from {', '.join(AUGMENTATIONS)}"
                )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        return self

    def replace(self, **overrides: Any) -> Config:
        """A copy with some fields changed; unknown field names are refused."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """The config a checkpoint saved. Fields it lacks were added later: they take the value that
        reproduces the run that wrote it (Xavier W_qk and gentle SLNs before lesson 11's fixes)."""
        legacy = {"d_attn_init": "xavier", "g_sln_gain": 0.1}
        return cls().replace(**{**{k: v for k, v in legacy.items() if k not in d}, **d})


PRESETS: dict[str, dict[str, Any]] = {
    "paper-cifar10": {},
    "seed-report-cifar10": dict(
        latent_dim=128,
        style_dim=128,
        g_dim=300,
        g_depth=3,
        g_num_heads=5,
        g_fourier_dim=300,
        g_decoder_dim=300,
        d_dim=300,
        d_depth=3,
        d_num_heads=5,
        batch_size=32,
        steps=100 * 50_000 // 32,  # 100 epochs of CIFAR-10 at batch 32
    ),
    "tiny-cpu": dict(
        latent_dim=64,
        style_dim=64,
        mapping_layers=2,
        g_patch_size=4,
        g_dim=64,
        g_depth=2,
        g_num_heads=2,
        g_fourier_dim=64,
        g_decoder_dim=64,
        d_patch_size=4,
        d_dim=64,
        d_depth=2,
        d_num_heads=2,
        batch_size=32,
        steps=2_000,
        bcr_real=0.0,  # course choice: bCR 10 shrinks D's real/fake logit gap ~100x at this scale (lesson 11)
        bcr_fake=0.0,
        ema_decay=0.99,
        log_every=50,
        sample_every=250,
        ckpt_every=500,
        cfd_every=500,  # the course metric (lesson 11), offline, ~5 s per evaluation on a CPU
        fid_num_samples=2_000,
    ),
}
# About one CPU hour on a 2-core machine: tiny-cpu's networks and recipe, trained 6x longer, with a slower
# EMA for the longer run and the course metric (cFD) logged on the way. Lesson 11 shows its result.
PRESETS["cpu-hour"] = dict(
    PRESETS["tiny-cpu"],
    steps=12_000,
    ema_decay=0.995,  # course choice: a ~200-step memory, 1/(1 - decay), for a 12k-step run
    log_every=100,
    sample_every=1_000,
    ckpt_every=1_000,
    cfd_every=1_000,
    fid_num_samples=0,
)


def get_config(preset: str = "paper-cifar10", **overrides: Any) -> Config:
    """The named preset with optional field overrides, validated.

    >>> get_config("tiny-cpu", batch_size=8).batch_size
    8
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = Config(preset=preset).replace(**PRESETS[preset]).replace(**overrides)
    return cfg.validate()


__all__ = ["AUGMENTATIONS", "Config", "ConfigError", "PRESETS", "get_config"]
