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

Every field records where its default comes from (``field_sources()``): the paper, the authors' official
code (mlpc-ucsd/ViTGAN), or a course choice. Fields declared with ``arch`` shape the networks' parameters
(``ARCH_FIELDS``): a checkpoint resumes only into a config that agrees on all of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

PAPER = "paper (Lee et al. 2022, CIFAR-10 setting)"
OFFICIAL = "official code (mlpc-ucsd/ViTGAN)"
COURSE = "course choice"
BOOKKEEPING = "course choice (bookkeeping: does not change what is learned)"


class ConfigError(ValueError):
    """A config value that cannot work; the message names the field and what to change."""


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def arch(default: Any, source: str) -> Any:
    """A field that shapes the networks' parameters: a checkpoint resumes only where these agree."""
    return dataclasses.field(default=default, metadata={"arch": True, "source": source})


def knob(default: Any, source: str) -> Any:
    """Any other field: initialisation, optimisation, augmentation, bookkeeping."""
    return dataclasses.field(default=default, metadata={"arch": False, "source": source})


@dataclass
class Config:
    """Every knob of a ViTGAN run. Defaults are the paper's CIFAR-10 setting; each field's ``source``
    (``dataclasses.fields(Config)[i].metadata["source"]``, or :func:`field_sources`) says where it comes
    from."""

    preset: str = knob("paper-cifar10", BOOKKEEPING)

    # data
    data: str = knob("cifar10", "course: 'cifar10' (torchvision download) or a folder of images")
    image_size: int = arch(32, "CIFAR-10")
    channels: int = arch(3, "CIFAR-10 (RGB)")

    # generator
    latent_dim: int = arch(384, PAPER)  # z
    style_dim: int = arch(384, PAPER)  # w, the mapping network's output
    mapping_layers: int = arch(4, "course choice (not in the paper; the official code uses 8)")
    mapping_lr_mul: float = arch(0.01, "StyleGAN2 (Karras et al. 2020) mapping-network multiplier")
    g_patch_size: int = arch(4, PAPER)  # P: 32 / 4 = 8 x 8 = 64 tokens
    g_dim: int = arch(384, PAPER)
    g_depth: int = arch(4, PAPER)
    g_num_heads: int = arch(6, PAPER)
    g_mlp_ratio: float = arch(4.0, PAPER)  # MLP width 1536 = 4 * 384
    g_fourier_dim: int = arch(384, "course choice (E_fou width = token width)")
    g_decoder_dim: int = arch(384, "course choice (decoder width = token width)")
    g_demodulate: bool = arch(True, "StyleGAN2 weight demodulation, as the official code's decoder")
    g_sln_gain: float = knob(1.0, "official code (0.1 collapsed: lesson 11)")  # w's strength in SLN at init
    g_fourier_freq: float = knob(2.1213, "course choice (CIPS LFF bound sqrt(9/2))")
    # ablations (lesson 13): where w enters, what turns tokens into patches, whether E_fou is there
    g_modulation: str = arch("sln", PAPER + ": 'sln'; or 'input' (w added to the input tokens)")
    g_patch_head: str = arch("implicit", PAPER + ": 'implicit' decoder; or 'linear' (per-token Linear)")
    g_fourier_features: bool = arch(True, PAPER + " (E_fou); False: raw pixel coordinates")

    # discriminator
    d_patch_size: int = arch(4, PAPER)
    d_overlap: int = arch(2, PAPER)  # o: each patch sees o extra pixels per side (kernel P + 2o)
    d_dim: int = arch(192, PAPER)
    d_depth: int = arch(4, PAPER)
    d_num_heads: int = arch(3, PAPER)
    d_mlp_ratio: float = arch(4.0, PAPER)  # MLP width 768 = 4 * 192
    d_spectral_norm: str = arch("isn", PAPER + ": 'isn'; or 'sn' (plain) or 'none'")
    d_attention: str = arch("l2", PAPER + ": 'l2' (tied W_q = W_k); or 'dot' (lesson 13)")
    d_attn_init: str = knob("unit-logit", "course choice (mean L2 logit -1 at init: lesson 11) or 'xavier'")

    # optimisation
    batch_size: int = knob(128, PAPER)
    lr_g: float = knob(2e-3, PAPER)
    lr_d: float = knob(2e-3, PAPER)
    beta1: float = knob(0.0, PAPER)
    beta2: float = knob(0.99, PAPER)
    # True: lr / sqrt(fan_in) on plain Linear/Conv weights, as the official EqualLinear layers do
    equalized_lr: bool = knob(False, "course choice (slowed G more than it steadied D: lesson 11)")
    steps: int = knob(500_000, PAPER)  # D + G iterations
    ema_decay: float = knob(0.999, "course choice (StyleGAN2-like)")  # G_ema, which every sample uses

    # augmentation and regularisation; the paper's DiffAugment adds scaling (each op with prob. 0.8)
    diffaug_policy: str = knob("color,translation,cutout", "DiffAugment (Zhao et al. 2020), always applied")
    lambda_real: float = knob(10.0, PAPER + " (official code: 1, between two augmented views)")
    lambda_fake: float = knob(10.0, PAPER)

    # bookkeeping: an interval of 0 means "only at the end of train()" (cfd_every: never)
    seed: int = knob(0, BOOKKEEPING)
    log_every: int = knob(100, BOOKKEEPING)
    sample_every: int = knob(2_000, BOOKKEEPING)
    ckpt_every: int = knob(5_000, BOOKKEEPING)
    keep_ckpts: int = knob(3, BOOKKEEPING)
    fid_every: int = knob(0, BOOKKEEPING)
    cfd_every: int = knob(0, BOOKKEEPING + "; the offline course metric (lesson 11)")
    cfd_num_samples: int = knob(2_000, "course choice (cFD depends on N: compare at one N)")
    fid_num_samples: int = knob(50_000, "the standard FID protocol (Heusel et al. 2017)")
    amp: str = knob("auto", "course choice: 'auto' (bf16 on CUDA), 'bf16' or 'none'")
    compile: str = knob(
        "auto", "course choice: 'auto' compiles where it pays (run.trainer.compile_decision), or 'on' / 'off'"
    )

    def __post_init__(self) -> None:
        # compile was a bool before 'auto' existed: old checkpoints and `--compile true` keep working
        if isinstance(self.compile, bool) or str(self.compile).lower() in _TRUE + _FALSE:
            self.compile = "on" if str(self.compile).lower() in _TRUE else "off"

    def validate(self) -> Config:
        """Refuse a config that cannot work, naming the field. Returns self."""
        if not isinstance(self.data, str) or not self.data.strip():
            raise ConfigError("data is empty: give 'cifar10' or the path of a folder of images")
        for name in ("image_size", "channels", "g_patch_size", "d_patch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
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
        if self.d_spectral_norm not in ("isn", "sn", "none"):
            raise ConfigError(f"d_spectral_norm must be 'isn', 'sn' or 'none', got {self.d_spectral_norm!r}")
        choices = {
            "d_attention": ("l2", "dot"),
            "g_modulation": ("sln", "input"),
            "g_patch_head": ("implicit", "linear"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.d_attn_init not in ("unit-logit", "xavier"):
            raise ConfigError(f"d_attn_init must be 'unit-logit' or 'xavier', got {self.d_attn_init!r}")
        from vitgan_lite.augment import parse_policy  # the augmentation names live with the augmentations

        try:
            parse_policy(self.diffaug_policy)
        except ValueError as e:
            raise ConfigError(f"diffaug_policy: {e}") from None
        for name in ("log_every", "sample_every", "ckpt_every", "fid_every", "cfd_every", "keep_ckpts"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"{name} must be 0 (only at the end) or a positive interval, got {getattr(self, name)}"
                )
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1) (an Adam decay), got {getattr(self, name)}")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"compile must be one of {COMPILE_MODES} or true/false, got {self.compile!r}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
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

    def section(self, prefix: str) -> dict[str, Any]:
        """``{arg: value}`` for the fields named ``<prefix><arg>``: ``cfg.section("d_")`` is the keyword
        arguments of the discriminator (``d_dim`` -> ``dim``), ``cfg.section("g_")`` the generator's."""
        return {k[len(prefix) :]: v for k, v in self.to_dict().items() if k.startswith(prefix)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """The config a checkpoint saved. Renamed fields take their new names; fields it lacks were added
        later and take the value that reproduces the run that wrote it (Xavier W_qk and gentle SLNs before
        lesson 11's fixes)."""
        d = {RENAMED.get(k, k): v for k, v in d.items()}
        return cls().replace(**{**{k: v for k, v in LEGACY_DEFAULTS.items() if k not in d}, **d})


AMP_MODES = ("auto", "bf16", "none")  # "auto": bf16 autocast on CUDA, float32 elsewhere
COMPILE_MODES = ("auto", "on", "off")  # "auto": see run.trainer.compile_decision
# The fields that shape the networks' parameters, read from the field metadata (``arch(...)`` above).
ARCH_FIELDS = tuple(f.name for f in dataclasses.fields(Config) if f.metadata["arch"])
# Old field names in saved configs -> today's names; defaults for fields that older checkpoints lack.
RENAMED = {"bcr_real": "lambda_real", "bcr_fake": "lambda_fake", "d_norm": "d_spectral_norm"}
LEGACY_DEFAULTS = {"d_attn_init": "xavier", "g_sln_gain": 0.1}


def field_sources() -> dict[str, str]:
    """``{field: where its default comes from}`` for every config field."""
    return {f.name: f.metadata["source"] for f in dataclasses.fields(Config)}


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
        lambda_real=0.0,  # course choice: bCR 10 shrinks the real/fake logit gap ~100x here (lesson 11)
        lambda_fake=0.0,
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


__all__ = ["ARCH_FIELDS", "Config", "ConfigError", "PRESETS", "field_sources", "get_config"]
