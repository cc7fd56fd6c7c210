"""vitgan-lite: the helper package of an open course that rebuilds ViTGAN (Lee et al., ICLR 2022).

The teaching core: each module is one concept, taught by one notebook in ``notebooks/``:

    data (00), patches (01), positional (02), attention (03), spectral (04), discriminator (05),
    modulation (06), inr (07), generator (08), losses + augment (09), train (10),
    diagnostics + quality (11), metrics (12), the ablation switches and probes (13); config, course and
    viz serve every lesson.

The run layer, ``vitgan_lite.run`` (trainer, checkpoints, distributed, FID / IS, benchmark, command line),
runs the core for real; the core never imports it. ``checks`` holds one checker per exercise.

Nothing is imported eagerly here beyond the config: ``import vitgan_lite`` is cheap and has no side
effects. Import the modules you need, e.g. ``from vitgan_lite.patches import patchify``.
"""

from vitgan_lite.config import PRESETS, Config, ConfigError, get_config

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "PRESETS", "get_config", "__version__"]
