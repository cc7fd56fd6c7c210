"""The lesson-01 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import torch
import torch.nn.functional as F
from helpers import alternatives_pass, assert_checker_contract, assert_rejects, mistakes_are_named

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


# ---- Exercise 1.1: patchify --------------------------------------------------------------------------


def _patchify_with(perm):
    def f(x, P):
        B, C, H, W = x.shape
        return x.reshape(B, C, H // P, P, W // P, P).permute(*perm).reshape(B, (H // P) * (W // P), -1)

    return f


def _split_wrong(x, P):  # (P, H/P) instead of (H/P, P), on both axes: strided "patches"
    B, C, H, W = x.shape
    x = x.reshape(B, C, P, H // P, P, W // P).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(B, (H // P) * (W // P), C * P * P)


def _split_rows_wrong(x, P):
    B, C, H, W = x.shape
    x = x.reshape(B, C, P, H // P, W // P, P).permute(0, 3, 4, 1, 2, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)


def _three_channels(x, P):
    B, _, H, W = x.shape
    x = x.reshape(B, 3, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), 3 * P * P)


def _square(x, P):  # uses H for W
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // P, P, H // P, P).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) ** 2, C * P * P)


def _true_division(x, P):
    B, C, H, W = x.shape
    x = x.reshape(B, C, H / P, P, W / P, P).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, -1, C * P * P)


def _view_after_permute(x, P):
    B, C, H, W = x.shape
    x = x.view(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5)
    return x.view(B, (H // P) * (W // P), C * P * P)


def _patch_size_four(x, P):
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // 4, 4, W // 4, 4).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)


def _squeezed(x, P):
    return patches.patchify(x, P).squeeze()


def _unfold_chain_without_permute(x, P):
    B, C, H, W = x.shape
    return x.unfold(2, P, P).unfold(3, P, P).reshape(B, -1, C * P * P)  # (B, C, H/P, W/P, P, P) flattened


def _grid_before_batch(x, P):
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // P, P, W // P, P).permute(2, 4, 0, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)


def _fixed_image_size(x, P):
    B, C, H, W = x.shape
    x = x.reshape(B, C, 32 // P, P, 32 // P, P).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, -1, C * P * P)


test_patchify_mistakes_are_named = mistakes_are_named(
    check_patchify,
    [
        (lambda x, P: x.reshape(x.shape[0], -1, x.shape[1] * P * P), r"patch 0 is not the top-left.*permut"),
        (_patchify_with((0, 2, 4, 3, 5, 1)), r"channels-last.*\(C, P, P\)"),
        (_patchify_with((0, 4, 2, 1, 3, 5)), r"grid is transposed"),
        (_patchify_with((0, 2, 4, 1, 5, 3)), r"pixels are transposed"),
        (
            _patchify_with((0, 1, 2, 4, 3, 5)),
            r"patch 0 is not the top-left.*channel axis C comes before the grid",
        ),
        # The old message blamed a values change on a missing permute; now it names the values change.
        (lambda x, P: patches.patchify(x, P).float() * 1.0001, r"changed the values"),
        (lambda x, P: patches.patchify(x, P)[:, :-1], r"should have shape"),
        # A split on the wrong axis is named as such, not blamed on a missing permute.
        (_split_wrong, r"strided.*split H into \(P, H/P\) and W into \(P, W/P\)"),
        (_split_rows_wrong, r"strided.*split H into \(P, H/P\) instead"),
        (_three_channels, r"only the channel count changed.*hard-code 3"),
        (_square, r"only the (height|width) changed.*H and W"),
        (_true_division, r"integer division, H // P"),
        (_view_after_permute, r"\.view.*reshape"),
        (_patch_size_four, r"only the patch size changed.*patch_size"),
        (lambda x, P: F.unfold(x, P, stride=P), r"\(B, C\*P\*P, N\).*transpose\(1, 2\)"),
        (_squeezed, r"squeeze\(\) dropped an axis.*only the batch size changed"),
        (
            lambda x, P: patches.patchify(x, P).reshape(x.shape[0], x.shape[2] // P, x.shape[3] // P, -1),
            r"grid",
        ),
        (lambda x, P: patches.patchify(x, P).float(), r"float64.*keep the dtype"),
        (_unfold_chain_without_permute, r"\(B, C, H/P, W/P, P_rows, P_cols\).*channel axis C comes before"),
        (
            lambda x, P: x.reshape(x.shape[0], x.shape[1] * P * P, -1).transpose(1, 2),
            r"every N-th value",
        ),
        (
            lambda x, P: (lambda p: p - p.mean(-1, keepdim=True))(patches.patchify(x, P)),
            r"changed the values.*normalisation",
        ),
        (_grid_before_batch, r"different images"),
        (_fixed_image_size, r"read each size.*hard-coding"),
    ],
)


def _patchify_loops(x, P):
    B, C, H, W = x.shape
    tokens = [x[:, :, r : r + P, c : c + P].reshape(B, -1) for r in range(0, H, P) for c in range(0, W, P)]
    return torch.stack(tokens, dim=1)


test_patchify_alternatives_pass = alternatives_pass(
    check_patchify,
    [
        lambda x, P: F.unfold(x, kernel_size=P, stride=P).transpose(1, 2),
        lambda x, P: (
            x.unfold(2, P, P)
            .unfold(3, P, P)
            .permute(0, 2, 3, 1, 4, 5)
            .reshape(x.shape[0], -1, x.shape[1] * P * P)
        ),
        lambda x, P: _patchify_with((0, 2, 4, 1, 3, 5))(x.contiguous(), P),
        lambda x, P: (
            torch.einsum("bchpwq->bhwcpq", x.reshape(*x.shape[:2], x.shape[2] // P, P, x.shape[3] // P, P))
            .flatten(3)
            .flatten(1, 2)
        ),
        _patchify_loops,
    ],
)


def test_crash_in_learner_code_is_reported_with_its_cause():
    def crashes(x, P):
        return x.view(-1, 7)

    assert_rejects(check_patchify, crashes, r"your code raised RuntimeError")


# ---- Exercise 1.2: unpatchify ------------------------------------------------------------------------


def _unpatchify_with(perm, inner=None):
    def f(p, P, S, C=3):
        G = S // P
        x = p.reshape(p.shape[0], G, G, *(inner(C, P) if inner else (C, P, P)))
        return x.permute(*perm).reshape(p.shape[0], C, S, S)

    return f


def _u_three_channels(p, P, S, C=3):
    G = S // P
    return p.reshape(p.shape[0], G, G, 3, P, P).permute(0, 3, 1, 4, 2, 5).reshape(p.shape[0], 3, S, S)


def _u_true_division(p, P, S, C=3):
    G = S / P
    return p.reshape(p.shape[0], G, G, C, P, P).permute(0, 3, 1, 4, 2, 5).reshape(p.shape[0], C, S, S)


def _u_view(p, P, S, C=3):
    G = S // P
    return p.view(p.shape[0], G, G, C, P, P).permute(0, 3, 1, 4, 2, 5).view(p.shape[0], C, S, S)


def _u_channels_last_image(p, P, S, C=3):
    G = S // P
    return p.reshape(p.shape[0], G, G, C, P, P).permute(0, 1, 4, 2, 5, 3).reshape(p.shape[0], S, S, C)


def _u_patch_four(p, P, S, C=3):
    G = S // 4
    return p.reshape(p.shape[0], G, G, C, 4, 4).permute(0, 3, 1, 4, 2, 5).reshape(p.shape[0], C, S, S)


def _u_image_size_as_grid(p, P, S, C=3):
    return p.reshape(p.shape[0], S, S, C, P, P).permute(0, 3, 1, 4, 2, 5).reshape(p.shape[0], C, S, S)


def _u_squeezed(p, P, S, C=3):
    return patches.unpatchify(p, P, S, C).squeeze()


def _u_transposed_tokens(p, P, S, C=3):
    return p.transpose(1, 2).reshape(p.shape[0], C, S, S)


def _u_mix_batch(p, P, S, C=3):
    G = S // P
    return p.reshape(p.shape[0], G, G, C, P, P).permute(1, 3, 0, 4, 2, 5).reshape(p.shape[0], C, S, S)


test_unpatchify_mistakes_are_named = mistakes_are_named(
    check_unpatchify,
    [
        (
            lambda p, P, S, C=3: p.reshape(p.shape[0], C, S, S),
            r"top-left .* is not patch 0.*reshape the patches",
        ),
        (_unpatchify_with((0, 3, 2, 4, 1, 5)), r"does not give x back.*BELOW.*transposed"),  # grid transposed
        (_unpatchify_with((0, 3, 1, 5, 2, 4)), r"does not give x back.*pixels are transposed"),
        (lambda p, P, S, C=3: torch.zeros(p.shape[0], C, S, S + 1), r"should have shape"),
        (_unpatchify_with((0, 5, 1, 3, 2, 4), inner=lambda C, P: (P, P, C)), r"channels-last, \(P, P, C\)"),
        (_u_three_channels, r"only the channel count changed.*channels argument"),
        (_u_true_division, r"integer division"),
        (_unpatchify_with((0, 3, 4, 1, 5, 2)), r"every \(H/P\)-th row.*\(H/P, P\)"),  # split the wrong way
        (_u_view, r"\.view.*reshape"),
        (_u_channels_last_image, r"channels last.*\(B, C, H, W\)"),
        (lambda p, P, S, C=3: patches.unpatchify(p, P, S, C).clamp(-1, 1), r"changed the values.*clamping"),
        (lambda p, P, S, C=3: patches.unpatchify(p, P, S, C).float(), r"float64.*keep the dtype"),
        (_u_patch_four, r"only the patch size changed.*patch_size"),
        (_u_image_size_as_grid, r"image_size counts pixels.*image_size // patch_size"),
        (_u_squeezed, r"squeeze\(\) dropped an axis.*channel count changed"),
        (_u_transposed_tokens, r"every N-th position.*\(B, C\*P\*P, N\)"),
        (_u_mix_batch, r"different images"),
        (
            _unpatchify_with((0, 3, 2, 5, 1, 4)),
            r"BELOW.*transposed",
        ),  # grid and pixels transposed: grid first
        (
            _unpatchify_with((0, 4, 1, 3, 2, 5)),
            r"your permute orders the axes \(B, P_rows, H/P, C, W/P, P_cols\)",
        ),
        (
            _unpatchify_with((0, 4, 1, 3, 2, 5), inner=lambda C, P: (P, C, P)),
            r"does not give x back.*as \(P_rows, C, P_cols\)",
        ),
    ],
)


def _unpatchify_loops(p, P, S, C=3):
    B, G = p.shape[0], S // P
    out = p.new_zeros(B, C, S, S)
    for n in range(G * G):
        r, c = divmod(n, G)
        out[:, :, r * P : (r + 1) * P, c * P : (c + 1) * P] = p[:, n].reshape(B, C, P, P)
    return out


test_unpatchify_alternatives_pass = alternatives_pass(
    check_unpatchify,
    [
        lambda p, P, S, C=3: F.fold(p.transpose(1, 2), output_size=S, kernel_size=P, stride=P),
        lambda p, P, S, C=3: _unpatchify_with((0, 3, 1, 4, 2, 5))(p, P, S, p.shape[-1] // (P * P)),
        lambda p, P, S, C=3: (
            (lambda G: p.reshape(-1, G, G, C, P, P))(int(p.shape[1] ** 0.5))
            .permute(0, 3, 1, 4, 2, 5)
            .reshape(p.shape[0], C, S, S)
        ),
        lambda p, P, S, C=3: torch.einsum(
            "bhwcpq->bchpwq", p.reshape(p.shape[0], S // P, S // P, C, P, P)
        ).reshape(p.shape[0], C, S, S),
        _unpatchify_loops,
    ],
)
