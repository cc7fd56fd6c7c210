"""The lesson-05 checkers pass the reference and the solution, meet the stubs kindly, reject real mistakes."""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from helpers import assert_checker_contract, assert_rejects, mistakes_are_named
from torch import nn

from vitgan_lite.attention import MultiHeadAttention
from vitgan_lite.checks import check_discriminator_block, check_discriminator_forward
from vitgan_lite.discriminator import DiscriminatorBlock, ViTDiscriminator

LESSON = "05_vit_discriminator"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "DiscriminatorBlock": (check_discriminator_block, DiscriminatorBlock),
            "Discriminator": (check_discriminator_forward, ViTDiscriminator),
        },
        capsys,
    )


# ---- Exercise 5.1: wrong blocks, each the reference with one line changed ----


class PostNorm(DiscriminatorBlock):
    def forward(self, x):
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


class NoAttnResidual(DiscriminatorBlock):
    def forward(self, x):
        x = self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class NoMlpResidual(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return self.mlp(self.norm2(x))


class NormalizedResidual(DiscriminatorBlock):
    def forward(self, x):
        h = self.norm1(x)
        x = h + self.attn(h)
        h = self.norm2(x)
        return h + self.mlp(h)


class SharedNorm(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm1(x))


class MlpDiscarded(DiscriminatorBlock):
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        _ = x + self.mlp(self.norm2(x))
        return x


class DotProductBlock(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.attn = MultiHeadAttention(dim, num_heads)


class WrongHidden(DiscriminatorBlock):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(dim, dim), act=nn.GELU(), fc2=nn.Linear(dim, dim)))


class UnnamedMlp(DiscriminatorBlock):
    """Correct, with an unnamed nn.Sequential MLP: must pass."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, fast=True):
        super().__init__(dim, num_heads, mlp_ratio, fast)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


def test_block_with_unnamed_sequential_passes():
    assert check_discriminator_block(UnnamedMlp)


test_block_mistakes_are_named = mistakes_are_named(
    check_discriminator_block,
    [
        (PostNorm, r"post-norm.*pre-norm"),
        (NoAttnResidual, r"residual .*around the attention is missing"),
        (NoMlpResidual, r"residual .*around the MLP is missing"),
        (NormalizedResidual, r"residual adds the NORMALIZED input"),
        (SharedNorm, r"norm1 is used twice"),
        (MlpDiscarded, r"MLP's result is discarded"),
        (DotProductBlock, r"L2MultiHeadAttention.*tied"),
        (WrongHidden, r"int\(dim \* mlp_ratio\)"),
    ],
)


# ---- Exercise 5.2: wrong forwards, built from one parametrized forward ----


def make_disc(cls_at="first", pos="all", pool="cls", final_norm=True, act=None, squeeze=True):
    """A ViTDiscriminator subclass whose forward makes the named mistake."""

    class Wrong(ViTDiscriminator):
        def forward(self, x):
            h = self.patch_embed(x)  # (B, N, D)
            cls = self.cls_token.expand(h.shape[0], -1, -1)  # (B, 1, D)
            E_pos = self.pos_embed()  # (N, D)
            if cls_at == "first":
                h = torch.cat([cls, h], dim=1)
                full = torch.cat([self.cls_pos, E_pos])
            elif cls_at == "last":
                h = torch.cat([h, cls], dim=1)
                full = torch.cat([E_pos, self.cls_pos])
            else:
                full = E_pos
            if pos == "all":
                h = h + full
            elif pos == "patches":
                h = h + torch.cat([torch.zeros_like(self.cls_pos), E_pos])
            for block in self.blocks:
                h = block(h)
            y = {"cls": h[:, 0], "last": h[:, -1], "mean": h.mean(dim=1)}[pool]
            y = self.norm(y) if final_norm else y
            out = self.head(y)
            out = act(out) if act is not None else out
            return out.squeeze(-1) if squeeze else out

    return Wrong


def test_consistent_forward_written_out_passes():
    assert check_discriminator_forward(make_disc())


test_forward_mistakes_are_named = mistakes_are_named(
    check_discriminator_forward,
    [
        (make_disc(cls_at="last", pool="last"), r"CLS token is appended at the END"),
        (make_disc(cls_at="none", pool="mean"), r"CLS token is\s+absent"),
        (make_disc(pos="none"), r"E_pos is not added"),
        (make_disc(pos="patches"), r"cls_pos.*not added"),
        (make_disc(pool="last"), r"LAST token is pooled"),
        (make_disc(pool="mean"), r"mean-pooled"),
        (make_disc(final_norm=False), r"final LayerNorm is missing"),
        (make_disc(act=F.gelu), r"clips them from below.*GELU|GELU after the final logit"),
        (make_disc(act=torch.sigmoid), r"bounds them.*sigmoid|sigmoid after the final logit"),
        (make_disc(act=torch.tanh), r"bounds them.*tanh|tanh after the final logit"),
        (make_disc(act=lambda t: 3 * torch.tanh(t)), r"clips them from below|bounds them"),
        (make_disc(squeeze=False), r"squeeze"),
    ],
)


def test_forward_that_skips_the_blocks_is_named():
    class NoBlocks(ViTDiscriminator):
        def forward(self, x):
            return self.head(self.norm(self.patch_embed(x)[:, 0])).squeeze(-1)

    assert_rejects(check_discriminator_forward, NoBlocks, r"never runs self.blocks")


def test_crash_in_learner_code_is_reported_with_its_cause():
    class Crashes(ViTDiscriminator):
        def forward(self, x):
            return self.patch_embed(x) + self.pos_embed().T  # (N, D) transposed: shape error

    assert_rejects(check_discriminator_forward, Crashes, r"your code raised RuntimeError")
