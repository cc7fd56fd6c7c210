"""The lesson-08 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_not_implemented, assert_rejects, exercise, solution
from torch import nn

from vitgan_lite import generator, patches
from vitgan_lite.checks import check_assemble_patches, check_generator_block

LESSON = "08_vit_generator"
Ref = generator.GeneratorBlock


def test_reference_and_solution_pass(capsys):
    assert check_generator_block(Ref) and check_assemble_patches(patches.unpatchify)
    sol = solution(LESSON)
    assert check_generator_block(sol["GeneratorBlock"]) and check_assemble_patches(sol["assemble_patches"])
    assert "all checks passed" in capsys.readouterr().out


def test_stubs_are_not_implemented_yet():
    ex = exercise(LESSON)
    assert_not_implemented(check_generator_block, ex["GeneratorBlock"])
    assert_not_implemented(check_assemble_patches, ex["assemble_patches"])


def test_checkers_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_generator_block(Ref)
    assert torch.equal(torch.get_rng_state(), before)


# ---- wrong GeneratorBlocks (each overrides one piece of the reference) --------------------------------


class SharedInForward(Ref):
    """Public-port mistake: norm1 used for both branches (norm2 exists but is never called)."""

    def forward(self, h, w):
        h = h + self.attn(self.norm1(h, w))
        return h + self.mlp(self.norm1(h, w))


class SharedInstance(Ref):
    """Public-port mistake: one SLN instance assigned to both names."""

    def __init__(self, *args):
        super().__init__(*args)
        self.norm2 = self.norm1


class MLPDiscarded(Ref):
    """Public-port mistake: the MLP branch is computed, but the block returns h'."""

    def forward(self, h, w):
        h1 = h + self.attn(self.norm1(h, w))
        h = h1 + self.mlp(self.norm2(h1, w))  # noqa: F841  (the result is thrown away)
        return h1


class AttentionDiscarded(Ref):
    def forward(self, h, w):
        h1 = h + self.attn(self.norm1(h, w))
        return h + self.mlp(self.norm2(h1, w))


class NormalisedResidual(Ref):
    """The official ViTGAN code: x = SLN(h, w); h' = x + MSA(x) (not the paper's eq. 5)."""

    def forward(self, h, w):
        x = self.norm1(h, w)
        h = x + self.attn(x)
        x = self.norm2(h, w)
        return x + self.mlp(x)


class PlainLayerNormInForward(Ref):
    """Norms that ignore w: F.layer_norm instead of the block's SLNs."""

    def forward(self, h, w):
        h = h + self.attn(F.layer_norm(h, h.shape[-1:]))
        return h + self.mlp(F.layer_norm(h, h.shape[-1:]))


class PlainLayerNormModules(Ref):
    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, h, w):
        h = h + self.attn(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class PostNorm(Ref):
    def forward(self, h, w):
        h = self.norm1(h + self.attn(h), w)
        return self.norm2(h + self.mlp(h), w)


class DetachedW(Ref):
    def forward(self, h, w):
        return super().forward(h, w.detach())


class OtherNames(Ref):
    def __init__(self, dim, num_heads, mlp_ratio, style_dim):
        super().__init__(dim, num_heads, mlp_ratio, style_dim)
        self.ln_1 = self.norm1
        del self.norm1


@pytest.mark.parametrize(
    "wrong,match",
    [
        (SharedInForward, r"one SLN instance is used for both norms.*self\.norm2"),
        (SharedInstance, r"same SLN instance.*two instances"),
        (MLPDiscarded, r"MLP branch's result is discarded"),
        (AttentionDiscarded, r"attention branch is lost"),
        (NormalisedResidual, r"adds the normalised input.*UN-normalised.*official ViTGAN code"),
        (PlainLayerNormInForward, r"ignore w.*plain LayerNorm"),
        (PlainLayerNormModules, r"plain LayerNorm.*ignores w"),
        (PostNorm, r"post-norm"),
        (DetachedW, r"no gradient reaches w"),
        (OtherNames, r"name the submodules as the package does"),
    ],
)
def test_block_mistakes_are_named(wrong, match):
    assert_rejects(check_generator_block, wrong, match)


def test_block_with_an_index_named_mlp_passes():
    class IndexNamedMLP(Ref):
        def __init__(self, dim, num_heads, mlp_ratio, style_dim):
            super().__init__(dim, num_heads, mlp_ratio, style_dim)
            hidden = int(dim * mlp_ratio)
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    assert check_generator_block(IndexNamedMLP)


def test_block_value_by_hand():
    """The reference the checker trusts, against eq. 5 written out with the SLN formula (lesson 06)."""
    torch.manual_seed(1)
    block = Ref(4, 2, 2.0, 3)
    h, w = torch.randn(2, 3, 4), torch.randn(2, 3)

    def sln(norm, x):  # gamma(w) * (x - mean) / sqrt(var + eps) + beta(w), per token
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return norm.gamma(w)[:, None] * (x - mu) / torch.sqrt(var + 1e-5) + norm.beta(w)[:, None]

    h1 = h + block.attn(sln(block.norm1, h))
    by_hand = h1 + block.mlp(sln(block.norm2, h1))
    torch.testing.assert_close(block(h, w), by_hand, atol=1e-5, rtol=1e-4)


# ---- wrong assemble_patches ---------------------------------------------------------------------------


def _assemble_with(perm, channels_last=False):
    def f(p, P, S, C):
        B, G = p.shape[0], S // P
        if channels_last:
            return p.reshape(B, G, G, P, P, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, S, S)
        return p.reshape(B, G, G, C, P, P).permute(*perm).reshape(B, C, S, S)

    return f


@pytest.mark.parametrize(
    "wrong,match",
    [
        (lambda p, P, S, C: p.reshape(p.shape[0], C, S, S), r"own index.*plain reshape.*strips"),
        (_assemble_with((0, 3, 2, 4, 1, 5)), r"own index.*grid is transposed"),
        (_assemble_with((), channels_last=True), r"channels-last.*\(C, P, P\)"),
        (_assemble_with((0, 3, 1, 5, 2, 4)), r"pixels are transposed"),
        (lambda p, P, S, C: patches.unpatchify(p, P, S, C) * 1.5, r"own index"),
        (lambda p, P, S, C: torch.zeros(p.shape[0], C, S, S + 1), r"should have shape"),
    ],
)
def test_assemble_mistakes_are_named(wrong, match):
    assert_rejects(check_assemble_patches, wrong, match)


def test_index_fill_shows_the_blocks():
    """What the checker's index test expects, by hand: 8x8 image, P = 4, tokens 0 1 / 2 3."""
    p = torch.arange(4.0).view(1, 4, 1).expand(1, 4, 16)
    img = patches.unpatchify(p, 4, 8, 1)[0, 0]
    assert img[0, 0] == 0 and img[0, 7] == 1 and img[7, 0] == 2 and img[7, 7] == 3 and img[3, 4] == 1
