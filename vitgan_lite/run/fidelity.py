"""FID and IS of a generator through torch-fidelity (run layer); the formulas are :mod:`vitgan_lite.metrics`.

Taught in ``notebooks/12_cifar10_on_a_gpu.ipynb``. torch-fidelity's Inception is a port of the TF-FID
network that papers of ViTGAN's time report with (the paper's own numbers come from the authors' TF2 code);
:func:`compute_fid_is` calls it. Its weights are downloaded on first use,
or read from ``weights_path``; when neither works it raises :class:`~vitgan_lite.metrics.MetricsUnavailable`
(the trainer logs it and goes on). Pass a ``feature_extractor`` to bypass torch-fidelity entirely
(offline tests, notebooks without weights). ViTGAN reports FID 6.66 / IS 9.30 on CIFAR-10; the course
compares 50,000 samples with the training set (the common protocol; a course choice where a paper is silent).

Shape legend: ``N`` samples, ``d`` feature width, ``B`` batch, ``C, H, W`` image.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitgan_lite._shapes import check_image_batch
from vitgan_lite.course import resolve_device
from vitgan_lite.data import default_cache_dir, is_cifar10, resolve_source, to_float, to_uint8
from vitgan_lite.metrics import MetricsUnavailable, feature_statistics, frechet_distance

DOWNLOAD_TIMEOUT_S = 20.0  # urllib has no timeout of its own: never hang on a dead network
# torch-fidelity 0.3/0.4's URL; read from torch-fidelity itself when it has the constant
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)


def fid_reference(source: str | os.PathLike | None) -> str:
    """The FID reference of a run that trains on ``source``: torch-fidelity's ``"cifar10-train"`` for
    CIFAR-10 (unless ``$VITGAN_LITE_DATA`` points at a local copy), else the folder itself."""
    source = resolve_source(source)
    return "cifar10-train" if is_cifar10(source) else source


# ----------------------------------------------------------------------------------------------------
# FID / IS of a generator


def _check_generated(images: Any, n: int) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] != n:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"generator_fn({n}) must return {n} images of shape (n, C, H, W) in [-1, 1], got {got}; "
            "e.g. generator_fn = lambda n: G_ema(torch.randn(n, latent_dim, device=device))"
        )
    return images


def _features(
    images_fn: Callable[[int, int], torch.Tensor],
    n_total: int,
    batch_size: int,
    extractor: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Run ``extractor`` over ``images_fn(start, n)`` batches; returns float64 features (N, d) on the CPU."""
    feats = []
    for start in range(0, n_total, batch_size):
        n = min(batch_size, n_total - start)
        f = extractor(images_fn(start, n))  # (n, d)
        if not isinstance(f, torch.Tensor) or f.ndim != 2 or f.shape[0] != n:
            got = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ValueError(f"feature_extractor must map (n, C, H, W) images to (n, d) features, got {got}")
        feats.append(f.detach().to("cpu", torch.float64))
    return torch.cat(feats)  # (N, d)


class _Sampler(nn.Module):
    """torch-fidelity draws noise and calls a module; this one ignores it and calls ``generator_fn(n)``."""

    def __init__(self, generator_fn: Callable[[int], torch.Tensor]) -> None:
        super().__init__()
        self.generator_fn = generator_fn

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        n = noise.shape[0]
        images = _check_generated(self.generator_fn(n), n)  # (n, C, H, W) in [-1, 1]
        return to_uint8(images).to(noise.device)  # (n, C, H, W) uint8, what torch-fidelity's Inception reads


class _UInt8Images(torch.utils.data.Dataset):
    """A tensor of images as the uint8 Dataset torch-fidelity reads, on the CPU for its DataLoader."""

    def __init__(self, images: torch.Tensor) -> None:
        images = images if images.dtype == torch.uint8 else to_uint8(images)  # (N, C, H, W) uint8
        self.images = images.cpu()  # (N, C, H, W)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]  # (C, H, W)


def _import_torch_fidelity():
    try:
        import torch_fidelity
    except ImportError as e:
        raise MetricsUnavailable(
            f"FID / IS need torch-fidelity, which is not installed ({e}): "
            "pip install 'vitgan-lite[metrics]' (or pip install torch-fidelity)"
        ) from None
    return torch_fidelity


def _check_weights_path(weights_path: str | os.PathLike) -> str:
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise MetricsUnavailable(
            f"Inception weights file {path} does not exist. Download {INCEPTION_URL} on a machine with "
            "internet and pass its path as weights_path, or pass weights_path=None to download it here."
        )
    try:  # the file torch-fidelity will read: a plain state dict of tensors
        state = torch.load(path, map_location="cpu", weights_only=True)
        ok = isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())
    except Exception:  # noqa: BLE001  not a torch file at all
        ok = False
    if not ok:
        raise MetricsUnavailable(
            f"{path} is not the Inception weights file torch-fidelity needs (a state dict of tensors): "
            f"download {INCEPTION_URL} and pass its path as weights_path"
        )
    return str(path)


def _default_inception_weights(verbose: bool) -> str:
    """torch-fidelity's Inception weights in the torch hub cache, downloaded there once if missing."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3 as url
    except ImportError:  # a torch-fidelity that moved the constant: fall back to the known URL
        url = INCEPTION_URL
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if cached.is_file():
        return str(cached)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), progress=verbose)
    except OSError as e:  # URLError, HTTPError, timeouts and refused connections are all OSErrors
        raise MetricsUnavailable(
            f"could not download the Inception weights for FID / IS from {url} ({type(e).__name__}: {e}). "
            f"If this machine is offline, download that file elsewhere and pass weights_path=<file>, "
            f"or copy it to {cached}."
        ) from None
    finally:
        socket.setdefaulttimeout(old_timeout)
    return str(cached)


def _fidelity_reference(
    tf: Any, reference: str | os.PathLike | torch.Tensor, datasets_root: str | os.PathLike | None
) -> tuple[Any, str | None]:
    """torch-fidelity's input2 and the dataset root, checked before any sample is generated."""
    if isinstance(reference, torch.Tensor):
        check_image_batch(reference, "reference")
        return _UInt8Images(reference), None
    ref = "cifar10-train" if is_cifar10(reference) else str(reference)
    registry = tf.registry.DATASETS_REGISTRY
    if ref in registry:
        # the data module's CIFAR-10 download folder, so the archive is fetched once for training and FID
        root = str(datasets_root if datasets_root is not None else default_cache_dir())
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:  # fetch (or verify) the reference now, not after generating num_samples images
            registry[ref](root, True)
        except (OSError, RuntimeError) as e:  # URLError is an OSError; a missing archive a RuntimeError
            raise MetricsUnavailable(
                f"the FID reference {ref!r} could not be loaded into {root} ({type(e).__name__}: {e}). "
                "If you are offline, pass reference=<folder of real images> (e.g. $VITGAN_LITE_DATA/train)."
            ) from None
        finally:
            socket.setdefaulttimeout(old_timeout)
        return ref, root
    folder = Path(ref).expanduser()
    if not folder.is_dir():
        raise MetricsUnavailable(
            f"FID reference {ref!r} is neither a folder of images nor a torch-fidelity data set "
            f"({', '.join(registry)}): pass 'cifar10-train' or the path to a folder of real images"
        )
    if (folder / "train").is_dir():  # a <folder>/{train,test}/ tree, as vitgan_lite.data reads: use train
        folder = folder / "train"
    return str(folder), None


def compute_fid_is(
    generator_fn: Callable[[int], torch.Tensor],
    num_samples: int,
    reference: str | os.PathLike | torch.Tensor = "cifar10-train",
    *,
    feature_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
    weights_path: str | os.PathLike | None = None,
    batch_size: int = 64,
    splits: int = 10,
    cuda: bool | None = None,
    datasets_root: str | os.PathLike | None = None,
    verbose: bool = False,
) -> dict[str, float]:
    """FID of ``num_samples`` generated images against ``reference``, and their Inception Score.

    Args:
        generator_fn: ``n -> (n, C, H, W)`` float images in [-1, 1], e.g.
            ``lambda n: G_ema(torch.randn(n, latent_dim, device=device))`` (sample from the EMA generator).
            It is called under ``torch.no_grad()`` with ``n <= batch_size``.
        num_samples: how many images to generate (50,000 is the standard protocol).
        reference: ``"cifar10-train"`` (alias ``"cifar10"``; any torch-fidelity registered data set), a
            folder of real images (searched recursively; a folder with ``train/`` inside uses ``train/``),
            or a tensor ``(N, C, H, W)`` of real images (uint8, or float in [-1, 1]). torch-fidelity caches
            the features of a registered data set; a folder's or a tensor's are recomputed at every call.
        feature_extractor: ``images (n, C, H, W) in [-1, 1] -> features (n, d)``. When given, torch-fidelity
            is not used at all: FID comes from :func:`feature_statistics` and :func:`frechet_distance`, the
            reference must be a tensor, and the result holds ``"fid"`` only (IS needs Inception's classes).
        weights_path: a local copy of torch-fidelity's Inception weights (its
            ``feature_extractor_weights_path``); ``None`` downloads them once into the torch hub cache.
        batch_size: images per generator / Inception call.
        splits: chunks for the Inception Score's mean and std (10 by convention).
        cuda: run Inception on the GPU; ``None`` means "if one is available".
        datasets_root: where a registered reference is downloaded (default: the data module's cache).
        verbose: let torch-fidelity print progress.

    Returns:
        ``{"fid": ..., "is_mean": ..., "is_std": ...}`` as plain floats (``{"fid": ...}`` with a stand-in).

    Raises:
        MetricsUnavailable: torch-fidelity, the Inception weights or the reference data cannot be had;
            raised before any image is generated, with a message saying how to fix it.
    """
    if not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(
            f"num_samples must be an integer >= 2 (a covariance needs 2 samples), got {num_samples}"
        )
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if feature_extractor is not None:
        return _fid_with_extractor(generator_fn, num_samples, reference, feature_extractor, batch_size)

    # everything that can fail for lack of a package, a file or a network, before any sample is generated
    weights = _check_weights_path(weights_path) if weights_path is not None else None
    tf = _import_torch_fidelity()
    weights = weights if weights is not None else _default_inception_weights(verbose)
    input2, root = _fidelity_reference(tf, reference, datasets_root)

    cuda = resolve_device().type == "cuda" if cuda is None else cuda  # the course's one device rule
    # z_size=1: torch-fidelity insists on drawing noise; _Sampler ignores it and lets generator_fn draw z
    input1 = tf.GenerativeModelModuleWrapper(_Sampler(generator_fn), 1, "normal", 0)
    out = tf.calculate_metrics(
        input1=input1,
        input2=input2,
        input1_model_num_samples=num_samples,
        fid=True,
        isc=True,
        isc_splits=splits,
        feature_extractor_weights_path=weights,
        batch_size=batch_size,
        cuda=cuda,
        samples_find_deep=True,  # ImageFolder trees keep images in <folder>/<class>/
        datasets_root=root,
        verbose=verbose,
    )
    return {
        "fid": float(out[tf.KEY_METRIC_FID]),
        "is_mean": float(out[tf.KEY_METRIC_ISC_MEAN]),
        "is_std": float(out[tf.KEY_METRIC_ISC_STD]),
    }


def _fid_with_extractor(
    generator_fn: Callable[[int], torch.Tensor],
    num_samples: int,
    reference: Any,
    feature_extractor: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int,
) -> dict[str, float]:
    """FID on our own statistics of ``feature_extractor``'s features: no torch-fidelity, no Inception."""
    if not isinstance(reference, torch.Tensor):
        raise ValueError(
            f"with a feature_extractor, reference must be a tensor of real images (N, C, H, W), got "
            f"{type(reference).__name__}; load a folder with vitgan_lite.data.load_images(folder).images"
        )
    check_image_batch(reference, "reference")
    if reference.shape[0] < 2:
        raise ValueError(f"reference needs at least 2 images for a covariance, got {reference.shape[0]}")
    real = to_float(reference) if reference.dtype == torch.uint8 else reference  # (N, C, H, W) in [-1, 1]
    with torch.no_grad():
        f_fake = _features(
            lambda start, n: _check_generated(generator_fn(n), n), num_samples, batch_size, feature_extractor
        )  # (num_samples, d)
        f_real = _features(
            lambda start, n: real[start : start + n], real.shape[0], batch_size, feature_extractor
        )  # (N, d)
    if f_fake.shape[1] != f_real.shape[1]:
        raise ValueError(f"feature widths differ: {f_fake.shape[1]} for fakes, {f_real.shape[1]} for reals")
    return {"fid": frechet_distance(*feature_statistics(f_fake), *feature_statistics(f_real))}


__all__ = ["INCEPTION_URL", "compute_fid_is", "fid_reference"]
