"""Data: CIFAR-10 or any local image folder, as uint8 tensors, and a device-resident batch sampler.

Taught in ``notebooks/00_setup_and_data.ipynb``.

Every path gives the same thing: ``uint8`` images of shape ``(N, C, H, W)`` that ``to_float`` maps to
float tensors in [-1, 1] (the convention of the whole course, for reals and fakes alike).

Sources
-------
``"cifar10"``   torchvision's CIFAR-10, downloaded on first use into ``root`` (default: the folder in
                ``$VITGAN_LITE_CACHE``, else ``~/.cache/vitgan_lite``).
a folder path    an ImageFolder-style tree (``<folder>/<class>/*.jpg``), a flat folder of images, or a
                folder with ``train/`` and ``test/`` inside (the split picks one). Images are resized
                (shorter side) and center-cropped to ``image_size``.

When ``$VITGAN_LITE_DATA`` names a folder, it is the default source (CI points it at a JPEG copy of
CIFAR-10, since nothing can be downloaded there).

Why a device-resident sampler? CIFAR-10 is 50,000 x 3 x 32 x 32 bytes = 150 MB: it fits on any GPU.
Holding it there as uint8 and drawing batches by random index (with the flip done on the device)
avoids a DataLoader's per-batch decode, collate and host-to-device copy: the design's reasoning for a
GPU, not measured there by the course (on a CPU, lesson 00 measures no gain).
Shape legend: N images, B batch, C channels, H x W pixels.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ENV_DATA = "VITGAN_LITE_DATA"
ENV_CACHE = "VITGAN_LITE_CACHE"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
LARGE_FOLDER = 5_000  # images; decoding more shows a progress bar on a terminal
DOWNLOAD_TIMEOUT_S = 20.0


class DataError(RuntimeError):
    """Data could not be loaded; the message says what to change."""


@dataclass
class ImageSet:
    """A whole data set in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str

    def __len__(self) -> int:
        return self.images.shape[0]


CIFAR10_NAMES = ("cifar10", "cifar-10")  # the data set's name and its alias, everywhere in the package


def is_cifar10(source: str | os.PathLike | None) -> bool:
    """True for ``"cifar10"`` / ``"cifar-10"`` (any case), the names of torchvision's CIFAR-10."""
    return source is not None and str(source).strip().lower() in CIFAR10_NAMES


def default_source() -> str:
    """``$VITGAN_LITE_DATA`` when it is set, else ``"cifar10"``."""
    return os.environ.get(ENV_DATA) or "cifar10"


def resolve_source(source: str | os.PathLike | None = None) -> str:
    """What a run reads: ``None`` or a CIFAR-10 name gives :func:`default_source` (a local copy when
    ``$VITGAN_LITE_DATA`` is set); a folder path stays as it is."""
    return default_source() if source is None or is_cifar10(source) else str(source)


def default_cache_dir() -> Path:
    """Where downloads go: ``$VITGAN_LITE_CACHE`` or ``~/.cache/vitgan_lite``."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "vitgan_lite")


def load_images(
    source: str | os.PathLike | None = None,
    split: str = "train",
    image_size: int = 32,
    root: str | os.PathLike | None = None,
    per_class: int | None = None,
    download: bool = True,
) -> ImageSet:
    """Load a data set as uint8 images (N, 3, image_size, image_size).

    Args:
        source: ``"cifar10"`` or a folder of images; ``None`` means :func:`default_source`.
        split: ``"train"`` or ``"test"``.
        image_size: output side length (local folders are resized and center-cropped to it).
        root: CIFAR-10 download folder (default :func:`default_cache_dir`).
        per_class: keep at most this many images of each class (quick looks, CI).
        download: allow torchvision to download CIFAR-10 when it is not in ``root``.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    source = default_source() if source is None else source
    if is_cifar10(source):
        data = _load_cifar10(split, root, download)
        if image_size != 32:
            data.images = _resize_center_crop(data.images, image_size)
        if per_class is not None:
            data = _take_per_class(data, per_class)
    else:
        data = _load_folder(Path(source).expanduser(), split, image_size, per_class)
    return data


def _load_cifar10(split: str, root: str | os.PathLike | None, download: bool) -> ImageSet:
    from torchvision.datasets import CIFAR10

    root = Path(root) if root is not None else default_cache_dir()
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # urllib has no timeout of its own: never hang
    try:
        ds = CIFAR10(str(root), train=(split == "train"), download=download)
    except (OSError, RuntimeError) as e:  # URLError is an OSError; a missing archive is a RuntimeError
        raise DataError(
            f"CIFAR-10 could not be loaded from {root} ({type(e).__name__}: {e}). "
            "If you are offline, download it elsewhere into that folder, or use a local image folder: "
            f"set {ENV_DATA}=/path/to/images (an ImageFolder tree <folder>/<class>/*.jpg, or a folder "
            "with train/ and test/ inside), or pass source='/path/to/images'."
        ) from None
    finally:
        socket.setdefaulttimeout(old_timeout)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    labels = torch.tensor(ds.targets, dtype=torch.int64)  # (N,)
    return ImageSet(images, labels, list(ds.classes), source="cifar10")


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_folder(folder: Path, split: str, image_size: int, per_class: int | None = None) -> ImageSet:
    if not folder.exists():
        raise DataError(
            f"data folder {folder} does not exist: check the path (or ${ENV_DATA}), "
            "or use source='cifar10' to download CIFAR-10"
        )
    if not folder.is_dir():
        raise DataError(f"data source {folder} is a file, not a folder of images")
    if (folder / split).is_dir():  # <folder>/train/<class>/*.jpg
        folder = folder / split
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    classes: list[str] = []
    for d in class_dirs:
        found = _list_images(d)[:per_class]
        if found:
            labels += [len(classes)] * len(found)
            classes.append(d.name)
            files += found
    if not files:  # a flat folder of images, one class
        files = _list_images(folder)[:per_class]
        labels = [0] * len(files)
        classes = [folder.name]
    if not files:
        raise DataError(
            f"no images found in {folder}: expected {folder}/<class>/*.jpg (ImageFolder layout) or "
            f"{folder}/*.jpg, with suffixes {', '.join(IMAGE_SUFFIXES)}"
        )
    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        decoded = pool.map(lambda p: _read_image(p, image_size), files, chunksize=256)
        # a bar on a terminal for a large folder (50,000 JPEGs take most of a minute); silent elsewhere
        quiet = len(files) < LARGE_FOLDER
        images = list(tqdm(decoded, total=len(files), desc=f"decoding {folder}", unit="img",
                           disable=True if quiet else None, leave=False))  # fmt: skip
    return ImageSet(torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes, str(folder))


def _read_image(path: Path, image_size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode.startswith("I"):  # 16- or 32-bit integer pixels: scale to 8 bits, never clip
                im = _to_8_bit(im)
            im = im.convert("RGB")
            w, h = im.size
            if (w, h) != (image_size, image_size):
                scale = image_size / min(w, h)  # shorter side -> image_size, then center crop
                nw, nh = max(image_size, round(w * scale)), max(image_size, round(h * scale))
                im = im.resize((nw, nh), Image.BICUBIC)
                left, top = (nw - image_size) // 2, (nh - image_size) // 2
                im = im.crop((left, top, left + image_size, top + image_size))
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except Image.DecompressionBombError as e:
        raise DataError(
            f"image {path} is too large to decode safely ({e}). Resize it or remove it from the folder."
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"could not read image {path}: {e}. Remove or replace the file.") from None
    return data.view(image_size, image_size, 3).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def _to_8_bit(im: Any) -> Any:
    """A 16-bit (``I;16``) or 32-bit (``I``) greyscale image as 8-bit ``L``, the full range scaled."""
    import numpy as np
    from PIL import Image

    a = np.asarray(im, dtype=np.float64)
    top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(np.round(a * 255.0 / top), 0, 255).astype(np.uint8), mode="L")


def _resize_center_crop(images: torch.Tensor, image_size: int) -> torch.Tensor:
    import torch.nn.functional as F

    x = images.float()
    h, w = x.shape[-2:]
    scale = image_size / min(h, w)
    x = F.interpolate(
        x,
        size=(max(image_size, round(h * scale)), max(image_size, round(w * scale))),
        mode="bicubic",
        align_corners=False,
        antialias=True,
    )
    top, left = (x.shape[-2] - image_size) // 2, (x.shape[-1] - image_size) // 2
    x = x[..., top : top + image_size, left : left + image_size]  # (N, C, S, S)
    return x.round().clamp(0, 255).to(torch.uint8)


def _take_per_class(data: ImageSet, per_class: int) -> ImageSet:
    keep = torch.cat(
        [torch.nonzero(data.labels == c).flatten()[:per_class] for c in range(len(data.classes))]
    )
    keep = keep.sort().values
    return ImageSet(data.images[keep], data.labels[keep], data.classes, data.source)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float in [-1, 1] (the course's convention)."""
    if images.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {images.dtype}")
    return images.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 in [0, 255] (values outside are clipped)."""
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


class DeviceBatches:
    """Random batches from a uint8 data set held on the training device (no DataLoader workers).

    ``next(batches)`` gives float images (B, C, H, W) in [-1, 1]. Indices are drawn with replacement,
    so an epoch is a statistical notion; for GAN training that is the usual choice (StyleGAN2's
    infinite sampler works the same way).
    """

    def __init__(
        self,
        images: torch.Tensor,
        batch_size: int,
        device: torch.device | str = "cpu",
        flip: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be uint8 of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.images = images.to(device)  # (N, C, H, W) uint8, resident on the device
        self.batch_size = batch_size
        self.flip = flip
        self.generator = generator

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return self.sample(self.batch_size)

    def sample(self, batch_size: int) -> torch.Tensor:
        # Draws are made on the generator's device (CPU by default) so a seeded run is reproducible anywhere.
        gen_device = self.generator.device if self.generator is not None else self.images.device
        idx = torch.randint(len(self.images), (batch_size,), generator=self.generator, device=gen_device)
        x = to_float(self.images[idx.to(self.images.device)])  # (B, C, H, W) in [-1, 1]
        if self.flip:
            mirror = torch.rand(batch_size, generator=self.generator, device=gen_device) < 0.5
            mirror = mirror.to(x.device).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
            x = torch.where(mirror, x.flip(3), x)  # horizontal flip of half the batch
        return x

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state() if self.generator is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if state.get("generator") is not None and self.generator is not None:
            self.generator.set_state(state["generator"])


__all__ = [
    "CIFAR10_NAMES",
    "DataError",
    "DeviceBatches",
    "ENV_CACHE",
    "ENV_DATA",
    "ImageSet",
    "default_cache_dir",
    "default_source",
    "is_cifar10",
    "load_images",
    "resolve_source",
    "to_float",
    "to_uint8",
]
