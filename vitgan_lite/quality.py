"""Offline image quality for CPU-scale runs: cFD and cKID on a small CIFAR-10 classifier's features.

Taught in ``notebooks/11_making_the_gan_learn.ipynb``, beside FID in ``notebooks/12_cifar10_on_a_gpu.ipynb``;
for runs that cannot download Inception.

The Frechet distance of FID (Heusel et al., NeurIPS 2017) and the kernel distance of KID (Binkowski et
al., ICLR 2018) need nothing from Inception but its features. Here they are taken from
:class:`CifarFeatureNet`, a 6-layer CNN that the course trains itself on CIFAR-10
(``tools/train_feature_net.py``; weights committed in ``vitgan_lite/assets/cifar_feature_net.pt``):

    cFD  = ||mu_a - mu_b||^2 + Tr(Sigma_a + Sigma_b - 2 (Sigma_a Sigma_b)^(1/2))      (FID's formula)
    cKID = unbiased MMD^2 with the kernel k(x, y) = (x . y / d + 1)^3, averaged over random subsets

**cFD (course Frechet distance) is NOT comparable with Inception FID; use it to compare runs of this
course with each other; Inception FID via torch-fidelity stays the metric for GPU runs.** The same holds
for cKID against Inception KID. A number means something only next to the published scale
(``vitgan_lite/assets/quality_scale.json``, written by ``tools/quality_scale.py``: real vs real, blurred,
downsampled and noise images) and at the same sample count, since cFD is biased upwards by
``O(d / N)`` (fewer samples give a larger cFD for the same images); cKID is unbiased. With the
committed weights (82.7% CIFAR-10 test accuracy), against 10k training images: real test images 0.022
(10k samples) / 0.060 (2k), 3x3 box blur 9.5, 16x16 down-up 15.4, 5x5 blur 18.7, 8x8 down-up 26.1,
uniform noise 44.1 (see :func:`quality_scale`).

Typical use in a trainer (compute the real side once)::

    ref = reference_statistics(real_uint8[reference_indices(len(real_uint8))])   # 10k reals
    scores = score(fake_images, ref)        # {"cfd": ..., "kid": ..., "kid_std": ...}

The ``"kid"`` / ``"kid_std"`` keys hold cKID (the course's features, not Inception's).

Shape legend: ``N`` images, ``B`` batch, ``d`` feature width, ``m`` KID subset size, ``K`` classes,
``C, H, W`` image (3, 32, 32).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from vitgan_lite._shapes import check_image_batch
from vitgan_lite.data import to_float
from vitgan_lite.metrics import MetricsUnavailable, feature_statistics, frechet_distance

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_WEIGHTS = ASSETS / "cifar_feature_net.pt"
SCALE_FILE = ASSETS / "quality_scale.json"
TRAIN_SCRIPT = "tools/train_feature_net.py"
IMAGE_SIZE = 32
FEATURE_DIM = 128
REFERENCE_SIZE = 10_000  # reals in the reference the published scale uses
REFERENCE_SEED = 0


class FeatureNetUnavailable(MetricsUnavailable):
    """The committed feature net's weights are missing or unreadable; the message names the file and the
    script that regenerates it. A :class:`~vitgan_lite.metrics.MetricsUnavailable`, so a trainer that
    catches that logs it and carries on."""


# ----------------------------------------------------------------------------------------------------
# The feature net


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CifarFeatureNet(nn.Module):
    """A small CIFAR-10 classifier whose pooled last-stage activations are the cFD / cKID features.

    Three stages of (conv3x3-BN-ReLU) x 2 with widths ``widths``, a 2x2 max-pool between stages
    (32 -> 16 -> 8 pixels), global average pooling to ``(B, widths[-1])`` features, and a linear layer to
    ``(B, num_classes)`` logits. Input: ``(B, 3, 32, 32)`` float images in [-1, 1].
    In eval mode it is a deterministic function (batch norm uses its running statistics).
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, w in enumerate(widths):
            layers += _conv_bn_relu(c_in, w) + _conv_bn_relu(w, w)
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)
        self.widths = tuple(widths)
        self.feature_dim = c_in

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, 3, 32, 32)`` in [-1, 1] -> pooled features ``(B, d)``, d = ``widths[-1]``."""
        h = self.body(x)  # (B, d, 8, 8)
        return h.mean(dim=(2, 3))  # (B, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, 3, 32, 32)`` in [-1, 1] -> logits ``(B, K)``."""
        return self.head(self.features(x))  # (B, K)


def load_feature_net(path: str | os.PathLike | None = None) -> CifarFeatureNet:
    """The trained :class:`CifarFeatureNet` from ``path`` (default: the committed weights), frozen.

    Returns the net on the CPU in eval mode with ``requires_grad=False`` everywhere; ``net.meta`` holds
    the training metadata (``test_accuracy``, ``epochs``, ``seed``, ``feature_dim``, ``torch``, ...).
    The file stores a float16 state dict; it is loaded back to float32.

    Raises:
        FeatureNetUnavailable: the file is missing, corrupt or does not hold this net's weights.
    """
    path = Path(path).expanduser() if path is not None else DEFAULT_WEIGHTS
    regenerate = (
        f"regenerate it with `python {TRAIN_SCRIPT}` (needs CIFAR-10: set VITGAN_LITE_DATA to a local "
        "copy, or let torchvision download it), or restore it with `git checkout -- "
        "vitgan_lite/assets/cifar_feature_net.pt`"
    )
    if not path.is_file():
        raise FeatureNetUnavailable(f"the cFD feature net's weights file {path} does not exist: {regenerate}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, a git-lfs pointer, a foreign pickle: all mean "bad file"
        reason = (str(e).strip().splitlines() or [""])[0][:120]  # torch's first line; the rest is advice
        raise FeatureNetUnavailable(
            f"the cFD feature net's weights file {path} could not be read ({type(e).__name__}: {reason}); "
            f"it is corrupt, truncated or not a weights file: {regenerate}"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "meta" not in ckpt:
        raise FeatureNetUnavailable(
            f"{path} is not a cFD feature net file (expected a dict with 'state_dict' and 'meta', "
            f"written by {TRAIN_SCRIPT}): {regenerate}"
        )
    meta = dict(ckpt["meta"])
    net = CifarFeatureNet(widths=tuple(meta.get("widths", (32, 64, 128))))
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise FeatureNetUnavailable(
            f"{path} does not hold CifarFeatureNet weights matching its metadata ({e}): {regenerate}"
        ) from None
    net.eval().requires_grad_(False)
    net.meta = meta
    return net


_default_net: CifarFeatureNet | None = None


def default_feature_net() -> CifarFeatureNet:
    """The committed feature net, loaded once per process (see :func:`load_feature_net`)."""
    global _default_net
    if _default_net is None:
        _default_net = load_feature_net()
    return _default_net


# ----------------------------------------------------------------------------------------------------
# Features


def _check_images(images: Any) -> None:
    check_image_batch(images, "images", channels=3)
    if tuple(images.shape[-2:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"images must be {IMAGE_SIZE}x{IMAGE_SIZE}, got shape {tuple(images.shape)}: the cFD feature net "
            f"is a CIFAR-sized classifier, so resize to {IMAGE_SIZE}x{IMAGE_SIZE} first (e.g. "
            f"torch.nn.functional.interpolate(x, size={IMAGE_SIZE}, mode='bilinear', antialias=True)), "
            "and compare only runs at the same size"
        )
    if images.shape[0] == 0:
        raise ValueError("images is empty (N = 0): pass at least one image")
    if images.dtype == torch.uint8:
        return
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 in [0, 255] or float in [-1, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or inf: the generator diverged; check the run before scoring it")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1.5 or hi > 1.5:
        hint = " (they look like [0, 255]: pass them as uint8, or map with x / 127.5 - 1)" if hi > 2 else ""
        raise ValueError(f"float images must lie in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}")


@torch.no_grad()
def features(images: torch.Tensor, net: nn.Module | None = None, batch_size: int = 500) -> torch.Tensor:
    """Features ``(N, d)`` of ``images (N, 3, 32, 32)``, float64 on the CPU.

    Args:
        images: uint8 in [0, 255] (as :func:`vitgan_lite.data.load_images` gives) or float in [-1, 1]
            (as the generator gives; float values are clamped to [-1, 1], as saving them as uint8 would).
            ``to_float(u)`` and ``u`` give the same features. Any device: the net is moved to it.
        net: the feature extractor, default the committed :class:`CifarFeatureNet`; any module with a
            ``features(x (B, 3, 32, 32)) -> (B, d)`` method works (tests use stand-ins).
        batch_size: images per forward pass.
    """
    _check_images(images)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    net = default_feature_net() if net is None else net
    if not callable(getattr(net, "features", None)):
        raise TypeError(f"net must have a features(x) method, like CifarFeatureNet; got {type(net).__name__}")
    param = next(net.parameters(), None) if isinstance(net, nn.Module) else None
    if isinstance(net, nn.Module):
        net.to(images.device)
    was_training = getattr(net, "training", False)
    if isinstance(net, nn.Module):
        net.eval()
    out = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]  # (B, 3, 32, 32)
            x = to_float(x) if x.dtype == torch.uint8 else x.clamp(-1.0, 1.0)  # (B, 3, 32, 32) in [-1, 1]
            if param is not None:
                x = x.to(param.dtype)
            f = net.features(x)  # (B, d)
            if f.ndim != 2 or f.shape[0] != x.shape[0]:
                raise ValueError(f"net.features must map (B, 3, 32, 32) to (B, d), got {tuple(f.shape)}")
            out.append(f.to("cpu", torch.float64))
    finally:
        if was_training:
            net.train()
    return torch.cat(out)  # (N, d)


# ----------------------------------------------------------------------------------------------------
# cKID and cFD


def kid(
    feat_a: torch.Tensor,
    feat_b: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance on any features: ``(mean, std)`` of the unbiased MMD^2 over subsets.

    Binkowski et al. 2018, with the polynomial kernel ``k(x, y) = (x . y / d + 1)^3``. Each of ``subsets``
    draws takes ``subset_size`` rows of ``feat_a (N_a, d)`` and of ``feat_b (N_b, d)`` without replacement
    (a seeded ``torch.Generator``, so the result is deterministic) and computes

        MMD^2_u = sum_{i != j} k(a_i, a_j) / (m (m - 1)) + sum_{i != j} k(b_i, b_j) / (m (m - 1))
                  - 2 sum_{i, j} k(a_i, b_j) / m^2

    The std is over subsets (population std, as torch-fidelity reports it). Unbiased: two samples of one
    distribution give about 0 (slightly negative values happen).
    """
    a = torch.as_tensor(feat_a).detach().to("cpu", torch.float64)  # (N_a, d)
    b = torch.as_tensor(feat_b).detach().to("cpu", torch.float64)  # (N_b, d)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"feat_a and feat_b must have shapes (N_a, d) and (N_b, d) with one d, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}; use features(images) for both"
        )
    n = min(a.shape[0], b.shape[0])
    if not 2 <= subset_size <= n:
        raise ValueError(
            f"subset_size must lie in [2, min(N_a, N_b)] = [2, {n}], got {subset_size}: pass "
            f"subset_size={max(2, min(n, 1000))} or use more samples"
        )
    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}")
    d, m = a.shape[1], subset_size
    g = torch.Generator().manual_seed(seed)
    mmds = torch.empty(subsets, dtype=torch.float64)
    for s in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=g)[:m]]  # (m, d)
        y = b[torch.randperm(b.shape[0], generator=g)[:m]]  # (m, d)
        k_xx = (x @ x.T / d + 1) ** 3  # (m, m)
        k_yy = (y @ y.T / d + 1) ** 3  # (m, m)
        k_xy = (x @ y.T / d + 1) ** 3  # (m, m)
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        mmds[s] = within - 2 * k_xy.sum() / (m * m)
    return float(mmds.mean()), float(mmds.std(correction=0))


class QualityReference(NamedTuple):
    """The real side of cFD / cKID, computed once: ``mu (d,)``, ``sigma (d, d)``, ``features (N, d)``."""

    mu: torch.Tensor
    sigma: torch.Tensor
    features: torch.Tensor


def reference_indices(
    num_images: int, size: int = REFERENCE_SIZE, seed: int = REFERENCE_SEED
) -> torch.Tensor:
    """The fixed reference subset: the first ``size`` of a seeded permutation of ``range(num_images)``.

    ``reference_indices(50_000)`` picks the 10,000 CIFAR-10 training images that the published scale
    (``tools/quality_scale.py``) uses as its reference; use the same ones to compare with it.
    """
    if not 2 <= size <= num_images:
        raise ValueError(f"size must lie in [2, num_images] = [2, {num_images}], got {size}")
    return torch.randperm(num_images, generator=torch.Generator().manual_seed(seed))[:size]  # (size,)


def reference_statistics(
    images: torch.Tensor, net: nn.Module | None = None, batch_size: int = 500
) -> QualityReference:
    """Features of the real ``images (N, 3, 32, 32)`` and their ``(mu, sigma)``: pass it to :func:`score`."""
    f = features(images, net, batch_size)  # (N, d)
    mu, sigma = feature_statistics(f)  # (d,), (d, d)
    return QualityReference(mu, sigma, f)


def score(
    fake_images: torch.Tensor,
    reference: QualityReference,
    net: nn.Module | None = None,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    batch_size: int = 500,
) -> dict[str, float]:
    """cFD and cKID of ``fake_images (N, 3, 32, 32)`` against a :func:`reference_statistics` result.

    Returns ``{"cfd": ..., "kid": ..., "kid_std": ...}`` (the kid keys hold cKID) as plain floats.
    ``kid_subset_size`` is lowered to ``min(N_fake, N_ref)`` when there are fewer samples. Pass ``net``
    only if the reference was computed with the same net. cFD depends on N: compare runs at one N.
    """
    if not isinstance(reference, QualityReference):
        raise TypeError(
            "reference must be what reference_statistics(real_images) returns, got "
            f"{type(reference).__name__}"
        )
    f = features(fake_images, net, batch_size)  # (N, d)
    if f.shape[0] < 2:
        raise ValueError(f"cFD needs at least 2 images for a covariance, got {f.shape[0]}")
    if f.shape[1] != reference.features.shape[1]:
        raise ValueError(
            f"feature widths differ: {f.shape[1]} for the fakes, {reference.features.shape[1]} for the "
            "reference; compute both with the same net"
        )
    mu, sigma = feature_statistics(f)  # (d,), (d, d)
    m = min(kid_subset_size, f.shape[0], reference.features.shape[0])
    kid_mean, kid_std = kid(f, reference.features, subsets=kid_subsets, subset_size=m, seed=seed)
    return {
        "cfd": frechet_distance(mu, sigma, reference.mu, reference.sigma),
        "kid": kid_mean,
        "kid_std": kid_std,
    }


def quality_scale() -> dict[str, Any]:
    """The published scale (``vitgan_lite/assets/quality_scale.json``): ``rows[name]`` holds ``cfd``,
    ``kid``, ``kid_std`` and ``num_samples`` for real test images (``real_test``), blurred (``blur3``,
    ``blur5``), down-and-up-sampled (``down16``, ``down8``) and noise images, at 10k and at 2k
    (``name@2000``) samples against the 10k reference. Written by ``tools/quality_scale.py``."""
    import json

    if not SCALE_FILE.is_file():
        raise FeatureNetUnavailable(f"{SCALE_FILE} does not exist: regenerate it with tools/quality_scale.py")
    return json.loads(SCALE_FILE.read_text())


def course_fd(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    net: nn.Module | None = None,
    *,
    batch_size: int = 500,
    **score_options: Any,
) -> dict[str, float]:
    """cFD and cKID between two image sets ``(N_a, 3, 32, 32)`` and ``(N_b, 3, 32, 32)``.

    ``images_b`` is the reference (the reals); ``score_options`` and the result are :func:`score`'s.
    cFD is NOT comparable with Inception FID: compare runs of this course with each other.
    """
    ref = reference_statistics(images_b, net, batch_size)
    return score(images_a, ref, net, batch_size=batch_size, **score_options)


__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_DIM",
    "CifarFeatureNet",
    "FeatureNetUnavailable",
    "QualityReference",
    "course_fd",
    "default_feature_net",
    "features",
    "kid",
    "load_feature_net",
    "quality_scale",
    "reference_indices",
    "reference_statistics",
    "score",
]
