"""The lesson-00 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import numpy as np
import torch
from helpers import alternatives_pass, assert_checker_contract, mistakes_are_named

from vitgan_lite import data
from vitgan_lite.checks import check_to_float, check_to_uint8
from vitgan_lite.checks.data import _PROBE_EXPECTED, _PROBE_X

LESSON = "00_setup_and_data"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {"to_float": (check_to_float, data.to_float), "to_uint8": (check_to_uint8, data.to_uint8)},
        capsys,
    )


def test_the_uint8_probes_are_what_the_reference_gives():
    """The probes sit a quarter byte from any tie, so every correct rounding gives the same bytes."""
    assert torch.equal(data.to_uint8(_PROBE_X), _PROBE_EXPECTED)
    assert torch.equal(data.to_uint8(_PROBE_X.double()), _PROBE_EXPECTED)


# ---- Exercise 0.1: to_float --------------------------------------------------------------------------

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _divide_in_place(u):
    u /= 127.5  # on a uint8 tensor: the float result cannot be stored
    return u - 1


test_to_float_mistakes_are_named = mistakes_are_named(
    check_to_float,
    [
        (lambda u: u.float() / 255, r"\[0, 1\].*\[-1, 1\]"),
        (lambda u: (u // 128).float() * 2 - 1, r"integer division"),
        (lambda u: u.float() / 128 - 1, r"255 should map to \+1"),
        (lambda u: u.double() / 127.5 - 1, r"float32"),
        (lambda u: (u.float() - 127.5) / 255, r"byte 0 should map to -1.*-0\.5 to 0\.5.*127\.5"),
        (lambda u: (u.float() / 127.5 - 1).flatten(), r"keep the shape"),
        (lambda u: (u - 128).float() / 127.5, r"wrapped around.*\.float\(\) first"),  # uint8 0 - 128 = 128
        (lambda u: (u * 2).float() / 255 - 1, r"wrapped around"),
        (lambda u: 1 - u.float() / 127.5, r"reversed"),
        (lambda u: u.float() / 127.5 + 1, r"offset"),
        (lambda u: u.float() / 127 - 1, r"255 should map to \+1.*127\.5"),
        (lambda u: (u.float() / 127.5 - 1).round(), r"distinct values.*round"),
        (lambda u: (u.float() - u.min()) / (u.max() - u.min()).float() * 2 - 1, r"statistics of the batch"),
        (lambda u: (u.float() - u.float().mean()) / u.float().std(), r"statistics of the batch"),
        (lambda u: (u.float() / 255 - _MEAN) / _STD, r"different channels.*ImageNet"),
        (_divide_in_place, r"in-place.*uint8.*\.float\(\)"),
        (lambda u: (u.numpy() / 127.5 - 1).astype(np.float32), r"NumPy array"),
        (lambda u: u.half() / 127.5 - 1, r"float32.*float16"),
        (lambda u: (u.float() / 127.5 - 1).to(torch.uint8), r"should return floats"),
    ],
)


def _float_in_place(u):
    x = u.float()  # a new tensor, so the in-place steps below are fine
    x.div_(127.5).sub_(1)
    return x


def _torchvision(u):
    from torchvision.transforms.functional import convert_image_dtype

    return convert_image_dtype(u, torch.float32) * 2 - 1


test_to_float_alternatives_pass = alternatives_pass(
    check_to_float,
    [
        lambda u: u / 127.5 - 1,  # true division of a uint8 tensor gives float32
        lambda u: u.float().div(255).mul(2).sub(1),
        _float_in_place,
        _torchvision,
        lambda u: (u.double() / 127.5 - 1).float(),
        lambda u: torch.from_numpy(u.numpy().astype(np.float32) / np.float32(127.5) - np.float32(1)),
        lambda u: (u.float() - 127.5) / 127.5,
    ],
)


# ---- Exercise 0.2: to_uint8 --------------------------------------------------------------------------


def _in_place(x):
    return x.add_(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


test_to_uint8_mistakes_are_named = mistakes_are_named(
    check_to_uint8,
    [
        (lambda x: ((x + 1) * 127.5).to(torch.uint8), r"truncates.*round"),
        (lambda x: ((x + 1) * 127.5).round().to(torch.uint8), r"clip.*clamp"),
        (lambda x: ((x + 1) * 127.5).round().clamp(0, 255), r"uint8"),
        # A wrong scale is named as such, not blamed on truncation.
        (lambda x: (x * 255).round().clamp(0, 255).to(torch.uint8), r"\[0, 1\].*\(x \+ 1\) \* 127\.5"),
        (lambda x: ((x + 1) * 127.5).ceil().clamp(0, 255).to(torch.uint8), r"ceil.*round"),
        (lambda x: (x * 127.5).round().clamp(0, 255).to(torch.uint8), r"add 1 before scaling"),
        (lambda x: ((x + 1) * 255).round().clamp(0, 255).to(torch.uint8), r"\[0, 510\].*127\.5"),
        (lambda x: ((x + 1) * 128).round().clamp(0, 255).to(torch.uint8), r"scale is 128 instead of 127\.5"),
        (lambda x: ((x + 1) * 127).round().clamp(0, 255).to(torch.uint8), r"scale is 127 instead of 127\.5"),
        (lambda x: (x * 127.5 + 128).round().clamp(0, 255).to(torch.uint8), r"offset is 128"),
        (lambda x: ((1 - x) * 127.5).round().clamp(0, 255).to(torch.uint8), r"reversed"),
        (lambda x: ((x + 1) * 127.5).round().clamp(0, 255).to(torch.int8), r"int8.*-128"),
        (_in_place, r"changed its input in place"),
        (
            lambda x: ((x - x.min()) / (x.max() - x.min()) * 255).round().clamp(0, 255).to(torch.uint8),
            r"statistics of the batch",
        ),
        (lambda x: ((x + 1) * 127.5).round().to(torch.uint8).clamp(0, 255), r"clamp.*before the uint8 cast"),
        (lambda x: ((x + 1) * 127.5).round().clamp(0, 255).numpy().astype(np.uint8), r"NumPy array"),
        (lambda x: ((x + 1) * 127.5).round().clamp(0, 255).long(), r"uint8 tensor, got torch\.int64"),
        (lambda x: ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).flatten(), r"keep the shape"),
        (lambda x: ((x + 1) * 127.5).round().clamp(0, 256).to(torch.uint8), r"clip.*255"),
        (lambda x: ((x + 1) * 127.5).clamp(0, 255).int().to(torch.uint8), r"truncates.*round"),
        (lambda x: (x.clamp(0, 1) * 255).round().to(torch.uint8), r"\[0, 1\]"),
    ],
)


test_to_uint8_alternatives_pass = alternatives_pass(
    check_to_uint8,
    [
        lambda x: ((x + 1) / 2 * 255).round().clamp(0, 255).byte(),
        lambda x: (x.clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8),
        lambda x: torch.from_numpy(np.clip(np.rint((x.numpy() + 1) * 127.5), 0, 255).astype(np.uint8)),
        lambda x: ((x + 1) * 127.5).clamp(0, 255).add(0.5).floor().to(torch.uint8),  # round half up
        lambda x: torch.clip(torch.round((x.double() + 1) * 127.5), 0, 255).type(torch.uint8),
        lambda x: ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8),  # float64 stays float64
    ],
)
