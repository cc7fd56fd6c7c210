"""Data: every source gives uint8 (N, 3, S, S); floats are in [-1, 1]; bad input fails fast and clearly."""

import time
import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from vitgan_lite import data as D


def _write_images(folder, n, size=(32, 32), seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")


def test_imagefolder_layout_with_splits(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            _write_images(tmp_path / split / cls, n)
    train = D.load_images(tmp_path, "train")
    test = D.load_images(tmp_path, "test")
    assert train.images.shape == (6, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (4, 3, 32, 32)
    assert train.classes == ["cat", "dog"] and train.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_pixels_are_read_exactly_and_channels_first(tmp_path):
    arr = np.zeros((32, 32, 3), dtype=np.uint8)
    arr[0, 1] = (10, 20, 30)  # row 0, column 1
    (tmp_path / "a").mkdir()
    Image.fromarray(arr).save(tmp_path / "a" / "x.png")
    img = D.load_images(tmp_path).images[0]
    assert img[:, 0, 1].tolist() == [10, 20, 30] and img.sum().item() == 60


def test_flat_folder_resized_and_center_cropped(tmp_path):
    _write_images(tmp_path, 2, size=(64, 48))  # width 64, height 48
    out = D.load_images(tmp_path, image_size=16)
    assert out.images.shape == (2, 3, 16, 16) and out.classes == [tmp_path.name]


def test_per_class_limit(tmp_path):
    for cls in ("a", "b", "c"):
        _write_images(tmp_path / cls, 4)
    out = D.load_images(tmp_path, per_class=2)
    assert out.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_env_var_selects_the_local_folder(tmp_path, monkeypatch):
    _write_images(tmp_path / "only", 1)
    monkeypatch.setenv(D.ENV_DATA, str(tmp_path))
    assert D.default_source() == str(tmp_path)
    assert len(D.load_images()) == 1
    monkeypatch.delenv(D.ENV_DATA)
    assert D.default_source() == "cifar10"


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(D.DataError, match=r"does not exist.*VITGAN_LITE_DATA"):
        D.load_images(tmp_path / "nope")


def test_folder_without_images_names_the_folder(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("hi")
    with pytest.raises(D.DataError, match=rf"no images found in {tmp_path}"):
        D.load_images(tmp_path)


def test_too_deep_structure_is_refused_with_the_expected_layout(tmp_path):
    _write_images(tmp_path / "a" / "b", 2)  # images two levels down
    with pytest.raises(D.DataError, match=r"expected .*/<class>/\*\.jpg"):
        D.load_images(tmp_path)


def test_unreadable_image_names_the_file(tmp_path):
    _write_images(tmp_path / "cls", 2)
    (tmp_path / "cls" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(D.DataError, match=r"could not read image .*broken\.jpg"):
        D.load_images(tmp_path)


def test_offline_cifar10_fails_fast_with_a_fix(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(self, *a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    start = time.perf_counter()
    with pytest.raises(D.DataError, match=r"CIFAR-10 could not be loaded.*VITGAN_LITE_DATA"):
        D.load_images("cifar10", root=tmp_path)
    assert time.perf_counter() - start < 5


def test_cifar10_without_download_fails_clearly(tmp_path):
    with pytest.raises(D.DataError, match="CIFAR-10 could not be loaded"):
        D.load_images("cifar10", root=tmp_path, download=False)


def test_bad_split():
    with pytest.raises(D.DataError, match="split must be"):
        D.load_images("cifar10", split="valid")


def test_float_range_and_round_trip():
    u = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x = D.to_float(u)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert x[0, 0, 8, 0].item() == pytest.approx(128 / 127.5 - 1, abs=1e-6)  # hand value, float32
    assert torch.equal(D.to_uint8(x), u)
    assert D.to_uint8(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
    with pytest.raises(TypeError, match="uint8"):
        D.to_float(x)


def test_device_batches_are_float_in_range_and_reproducible():
    imgs = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    a = D.DeviceBatches(imgs, 7, generator=torch.Generator().manual_seed(1))
    b = D.DeviceBatches(imgs, 7, generator=torch.Generator().manual_seed(1))
    xa, xb = next(a), next(b)
    assert xa.shape == (7, 3, 8, 8) and xa.dtype == torch.float32
    assert -1 <= xa.min() and xa.max() <= 1 and torch.equal(xa, xb)


def test_device_batches_flip_is_per_sample():
    # One image, asymmetric left to right: with flips on, both orientations show up in one batch.
    img = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    img[..., 0] = 255
    batch = D.DeviceBatches(img, 64, generator=torch.Generator().manual_seed(0)).sample(64)
    left = (batch[:, 0, 0, 0] == 1).sum().item()
    assert 10 < left < 54  # about half mirrored
    flipped = batch[batch[:, 0, 0, 0] != 1]
    assert torch.equal(flipped[:, :, :, -1], torch.ones_like(flipped[:, :, :, -1]))
    no_flip = D.DeviceBatches(img, 16, flip=False).sample(16)
    assert (no_flip[:, 0, 0, 0] == 1).all()


def test_device_batches_state_round_trip():
    imgs = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    a = D.DeviceBatches(imgs, 3, generator=torch.Generator().manual_seed(5))
    next(a)
    state = a.state_dict()
    want = next(a)
    a.load_state_dict(state)
    assert torch.equal(next(a), want)


def test_device_batches_refuses_floats():
    with pytest.raises(ValueError, match="uint8"):
        D.DeviceBatches(torch.zeros(2, 3, 4, 4), 2)


def test_16_bit_pngs_keep_their_range(tmp_path):
    import numpy as np

    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)  # 0 .. 65535
    Image.fromarray(ramp).save(tmp_path / "deep.png")  # mode I;16
    images = D.load_images(str(tmp_path), image_size=16).images  # (1, 3, 16, 16)
    assert images.unique().numel() == 256, "every grey level kept, not clipped to two"
    assert images[0, 0, 0, 0] == 0 and images[0, 0, -1, -1] == 255


def test_an_image_above_the_decompression_bomb_limit_is_a_data_error(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64 x 64 is over twice the limit: an error
    with pytest.raises(D.DataError, match=r"big\.png is too large to decode safely.*Resize it or remove it"):
        D.load_images(str(tmp_path), image_size=16)
