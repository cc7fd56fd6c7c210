"""The lesson-01 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import torch
from helpers import assert_checker_contract, assert_rejects, mistakes_are_named

from vitgan_lite import patches
from vitgan_lite.checks import check_patchify, check_unpatchify

LESSON = "01_patches"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "patchify": (check_patchify, patches.patchify),
            "unpatchify": (check_unpatchify, lambda p, P, S, C=3: patches.unpatchify(p, P, S, C)),
        },
        capsys,
    )


def _patchify_with(perm):
    def f(x, P):
        B, C, H, W = x.shape
        return x.reshape(B, C, H // P, P, W // P, P).permute(*perm).reshape(B, (H // P) * (W // P), -1)

    return f


test_patchify_mistakes_are_named = mistakes_are_named(
    check_patchify,
    [
        (lambda x, P: x.reshape(x.shape[0], -1, x.shape[1] * P * P), r"patch 0 is not the top-left.*permut"),
        (_patchify_with((0, 2, 4, 3, 5, 1)), r"channels-last.*\(C, P, P\)"),
        (_patchify_with((0, 4, 2, 1, 3, 5)), r"grid is transposed"),
        (_patchify_with((0, 2, 4, 1, 5, 3)), r"pixels are transposed"),
        (
            _patchify_with((0, 1, 2, 4, 3, 5)),
            r"patch 0 is not the top-left",
        ),  # permute order mixes C into grid
        (lambda x, P: patches.patchify(x, P).float() * 1.0001, r"wrong order|patch 0"),
        (lambda x, P: patches.patchify(x, P)[:, :-1], r"should have shape"),
    ],
)


def _unpatchify_with(perm):
    def f(p, P, S, C=3):
        G = S // P
        return p.reshape(p.shape[0], G, G, C, P, P).permute(*perm).reshape(p.shape[0], C, S, S)

    return f


test_unpatchify_mistakes_are_named = mistakes_are_named(
    check_unpatchify,
    [
        (lambda p, P, S, C=3: p.reshape(p.shape[0], C, S, S), r"top-left .* is not patch 0"),
        (_unpatchify_with((0, 3, 2, 4, 1, 5)), r"top-left|does not give x back"),  # grid transposed
        (_unpatchify_with((0, 3, 1, 5, 2, 4)), r"does not give x back"),  # pixels transposed within patch
        (lambda p, P, S, C=3: torch.zeros(p.shape[0], C, S, S + 1), r"should have shape"),
    ],
)


def test_crash_in_learner_code_is_reported_with_its_cause():
    def crashes(x, P):
        return x.view(-1, 7)

    assert_rejects(check_patchify, crashes, r"your code raised RuntimeError")
