"""The lesson-00 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import torch
from helpers import assert_checker_contract, mistakes_are_named

from vitgan_lite import data
from vitgan_lite.checks import check_to_float, check_to_uint8

LESSON = "00_setup_and_data"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {"to_float": (check_to_float, data.to_float), "to_uint8": (check_to_uint8, data.to_uint8)},
        capsys,
    )


test_to_float_mistakes_are_named = mistakes_are_named(
    check_to_float,
    [
        (lambda u: u.float() / 255, r"\[0, 1\].*\[-1, 1\]"),
        (lambda u: (u // 128).float() * 2 - 1, r"integer division"),
        (lambda u: u.float() / 128 - 1, r"255 should map to \+1"),
        (lambda u: u.double() / 127.5 - 1, r"float32"),
        (lambda u: (u.float() - 127.5) / 255, r"byte 0 should map to -1"),
        (lambda u: (u.float() / 127.5 - 1).flatten(), r"keep the shape"),
    ],
)


test_to_uint8_mistakes_are_named = mistakes_are_named(
    check_to_uint8,
    [
        (lambda x: ((x + 1) * 127.5).to(torch.uint8), r"truncates.*round"),
        (lambda x: ((x + 1) * 127.5).round().to(torch.uint8), r"clip.*clamp"),
        (lambda x: ((x + 1) * 127.5).round().clamp(0, 255), r"uint8"),
        (lambda x: (x * 255).round().clamp(0, 255).to(torch.uint8), r"does not give u back"),
    ],
)
