"""The lesson-03 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import math

import torch
import torch.nn.functional as F
from helpers import alternatives_pass, assert_checker_contract, assert_rejects, mistakes_are_named
from torch import nn

from vitgan_lite import attention
from vitgan_lite.checks import check_l2_attention, check_l2_attention_logits

LESSON = "03_l2_attention"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "l2_attention_logits": (check_l2_attention_logits, attention.l2_attention_logits),
            "L2MultiHeadAttention": (check_l2_attention, attention.L2MultiHeadAttention),
        },
        capsys,
    )
    assert check_l2_attention(
        lambda dim, num_heads: attention.L2MultiHeadAttention(dim, num_heads, fast=True)
    )


# ----------------------------------------------------------------------------- 3.1: the logits
def _sq(q, k):
    """Squared distances by broadcasting (an independent reference): (B, H, N, 1, Dh) - (B, H, 1, N, Dh)."""
    return (q.unsqueeze(-2) - k.unsqueeze(-3)).square()  # (B, H, N, N, Dh)


def _cross_plus(q, k):
    q_sq, k_sq = q.square().sum(-1, keepdim=True), k.square().sum(-1).unsqueeze(-2)
    return -(q_sq + 2 * q @ k.transpose(-2, -1) + k_sq) / math.sqrt(q.shape[-1])


def _no_q_sq(q, k):
    return (2 * q @ k.transpose(-2, -1) - k.square().sum(-1).unsqueeze(-2)) / math.sqrt(q.shape[-1])


def _expanded(q, k, q_sq=None, k_sq=None, cross=2.0, scale=None):
    """The expanded form, with one piece replaceable by a mistake."""
    q_sq = q.square().sum(-1, keepdim=True) if q_sq is None else q_sq
    k_sq = k.square().sum(-1).unsqueeze(-2) if k_sq is None else k_sq
    scale = math.sqrt(q.shape[-1]) if scale is None else scale
    return -(q_sq - cross * q @ k.transpose(-2, -1) + k_sq) / scale


def logits_k_sq_column(q, k):
    return _expanded(q, k, k_sq=k.square().sum(-1, keepdim=True))  # forgot to make |k_j|^2 a row


def logits_no_keepdim(q, k):
    return _expanded(q, k, q_sq=q.square().sum(-1))  # (B, H, N) lines up with the last axis


def logits_squeeze(q, k):
    return _expanded(q, k, k_sq=k.square().sum(-1, keepdim=True).squeeze().unsqueeze(-2))


def logits_cross_without_2(q, k):
    return _expanded(q, k, cross=1.0)


def logits_norms_not_squared(q, k):
    return _expanded(q, k, q_sq=q.norm(dim=-1, keepdim=True), k_sq=k.norm(dim=-1).unsqueeze(-2))


def logits_scale_by_tokens(q, k):
    return _expanded(q, k, scale=math.sqrt(q.shape[-2]))  # N, not Dh


def logits_scale_by_heads(q, k):
    return _expanded(q, k, scale=math.sqrt(q.shape[1]))  # H, not Dh


def logits_softmaxed(q, k):
    return _expanded(q, k).softmax(dim=-1)  # the module's job


def logits_elementwise(q, k):
    return -(q - k).square().sum(-1) / math.sqrt(q.shape[-1])  # pairs query i with key i only


def logits_in_place_scale(q, k):
    q /= q.shape[-1] ** 0.25  # scale q and k by Dh^(-1/4) each, in place
    k /= k.shape[-1] ** 0.25
    return _expanded(q, k, scale=1.0)


def logits_float32_buffer(q, k):
    B, H, N, Dh = q.shape
    out = torch.zeros(B, H, N, N)  # float32, whatever q is
    for i in range(N):
        out[:, :, i] = -(q[:, :, i : i + 1] - k).square().sum(-1) / math.sqrt(Dh)
    return out


def logits_detached(q, k):
    return _expanded(q, k).detach()


def logits_no_grad(q, k):
    with torch.no_grad():
        return _expanded(q, k)


def logits_q_sq_detached(q, k):
    return _expanded(q, k, q_sq=q.square().sum(-1, keepdim=True).detach())


def logits_no_transpose(q, k):
    return -(q.square().sum(-1, keepdim=True) - 2 * q @ k + k.square().sum(-1).unsqueeze(-2)) / math.sqrt(
        q.shape[-1]
    )


def logits_heads_merged(q, k):
    B, H, N, Dh = q.shape
    return _expanded(q.reshape(B * H, N, Dh), k.reshape(B * H, N, Dh))


def logits_bad_double_backward(q, k):
    class _SquareWithBadSecondDerivative(torch.autograd.Function):
        """x^2 whose backward (2x * g) is computed without a graph: a double backward cannot go through it."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.square()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return (2 * x * g).detach()

    d = _SquareWithBadSecondDerivative.apply(q.unsqueeze(-2) - k.unsqueeze(-3))  # (B, H, N, N, Dh)
    return -d.sum(-1) / math.sqrt(q.shape[-1])


test_logit_mistakes_are_named = mistakes_are_named(
    check_l2_attention_logits,
    [
        (lambda q, k: _sq(q, k).sum(-1) / math.sqrt(q.shape[-1]), r"minus sign is missing"),
        (lambda q, k: -_sq(q, k).mean(-1) / math.sqrt(q.shape[-1]), r"MEAN of the squared.*SUM"),
        (lambda q, k: -_sq(q, k).sum(-1), r"1/sqrt\(Dh\) scaling is missing"),
        (lambda q, k: -_sq(q, k).sum(-1) / q.shape[-1], r"divide by sqrt\(Dh\) once, not by Dh"),
        (lambda q, k: -torch.cdist(q, k) / math.sqrt(q.shape[-1]), r"not squared"),
        (_cross_plus, r"cross term has the wrong sign"),
        (_no_q_sq, r"\|q_i\|\^2 term is missing"),
        (
            lambda q, k: -_sq(k, q).sum(-1) / math.sqrt(q.shape[-1]) + 0 * q.sum(),
            r"rows and columns are swapped",
        ),
        (lambda q, k: -_sq(q, q).sum(-1) / math.sqrt(q.shape[-1]), r"does not depend on k"),
        (lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), r"dot-product logits"),
        (lambda q, k: -torch.cdist(q, k).square() / math.sqrt(q.shape[-1]), r"torch\.cdist.*expanded form"),
        (lambda q, k: -_sq(q, k).sum(-1)[..., :-1], r"should have shape"),
        (lambda q, k: -_sq(q, k).sum(-1) / math.sqrt(q.shape[-1]) + 0.5, r"differ from -\|\|q_i - k_j"),
        (logits_k_sq_column, r"\|k_j\|\^2 is added as a COLUMN.*row"),
        (logits_no_keepdim, r"without keepdim=True.*keepdim=True\) is \(B, H, N, 1\)"),
        (logits_squeeze, r"right when no size is 1.*\.squeeze\(\) without an axis"),
        (logits_cross_without_2, r"cross term lacks its factor 2"),
        (logits_norms_not_squared, r"norms, not squared norms"),
        (logits_scale_by_tokens, r"number of TOKENS.*1/sqrt\(Dh\) with Dh = q\.shape\[-1\]"),
        (logits_scale_by_heads, r"number of HEADS.*1/sqrt\(Dh\) with Dh = q\.shape\[-1\]"),
        (logits_softmaxed, r"softmax probabilities.*LOGITS"),
        (logits_elementwise, r"query i met only key i"),
        (logits_in_place_scale, r"changed q or k in place"),
        (logits_float32_buffer, r"float64 q and k your logits are float32.*dtype"),
        (logits_detached, r"no gradient reaches q and k.*\.detach\(\)"),
        (logits_no_grad, r"no gradient reaches q and k.*no_grad"),
        (logits_q_sq_detached, r"gradient with respect to q differs.*cut from autograd"),
        (logits_no_transpose, r"your code raised.*Likely cause: a batched matrix product.*transpose"),
        (logits_heads_merged, r"heads were merged into the batch"),
        (logits_bad_double_backward, r"second derivatives .* NaN or wrong|double backward"),
    ],
)


def logits_broadcast(q, k):
    return -(q.unsqueeze(-2) - k.unsqueeze(-3)).pow(2).sum(dim=-1) * q.shape[-1] ** -0.5


def logits_einsum(q, k):
    qk = torch.einsum("bhid,bhjd->bhij", q, k)
    q_sq = torch.einsum("bhid,bhid->bhi", q, q)[..., :, None]
    k_sq = torch.einsum("bhjd,bhjd->bhj", k, k)[..., None, :]
    return (2 * qk - q_sq - k_sq) / torch.tensor(float(q.shape[-1])).sqrt()


def logits_clamped(q, k):
    sq = q.pow(2).sum(-1, keepdim=True) + k.pow(2).sum(-1, keepdim=True).transpose(-2, -1)
    sq = (sq - 2 * torch.matmul(q, k.transpose(-1, -2))).clamp(min=0)  # rounding can go below 0
    return -sq / math.sqrt(q.size(-1))


def logits_baddbmm(q, k):
    B, H, N, Dh = q.shape
    q3, k3 = q.reshape(B * H, N, Dh), k.reshape(B * H, N, Dh)
    q_sq = q3.square().sum(-1, keepdim=True)  # (BH, N, 1)
    k_sq = k3.square().sum(-1).unsqueeze(1)  # (BH, 1, N)
    sq = torch.baddbmm(q_sq + k_sq, q3, k3.transpose(1, 2), alpha=-2.0)  # (BH, N, N)
    return (-sq / math.sqrt(Dh)).view(B, H, N, N)


test_logit_alternatives_pass = alternatives_pass(
    check_l2_attention_logits,
    [attention.l2_attention_logits, logits_broadcast, logits_einsum, logits_clamped, logits_baddbmm],
)


# ----------------------------------------------------------------------------- 3.2: the module
class _Tied(nn.Module):
    """A correct, independently written L2 attention; the mistakes below override one piece of it."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qk, self.v, self.proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def split(self, t):
        B, N, _ = t.shape
        return t.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)

    def attn(self, q, k):
        return (-_sq(q, k).sum(-1) / math.sqrt(self.head_dim)).softmax(-1)  # (B, H, N, N)

    def queries(self, x):
        return self.split(self.qk(x))

    def keys(self, x):
        return self.split(self.qk(x))

    def values(self, x):
        return self.split(self.v(x))

    def merge(self, out, x):
        return self.proj(out.transpose(1, 2).reshape(x.shape))  # (B, N, D)

    def forward(self, x):
        return self.merge(self.attn(self.queries(x), self.keys(x)) @ self.values(x), x)


def test_independent_module_passes(capsys):
    assert check_l2_attention(_Tied)


class _Untied(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        del self.qk
        self.q, self.k = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        q, k = self.split(self.q(x)), self.split(self.k(x))
        return self.merge(self.attn(q, k) @ self.split(self.v(x)), x)


class _UntiedStacked(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.qk = nn.Linear(dim, 2 * dim)

    def forward(self, x):
        q, k = self.qk(x).chunk(2, dim=-1)
        return self.merge(self.attn(self.split(q), self.split(k)) @ self.split(self.v(x)), x)


class _ExtraKey(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.k = nn.Linear(dim, dim)

    def keys(self, x):
        return self.split(self.k(x))


class _PositiveDistance(_Tied):
    def attn(self, q, k):
        return (_sq(q, k).sum(-1) / math.sqrt(self.head_dim)).softmax(-1)


class _Mean(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).mean(-1) / math.sqrt(self.head_dim)).softmax(-1)


class _NoScale(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1)).softmax(-1)


class _ScaleAfterSoftmax(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1)).softmax(-1) / math.sqrt(self.head_dim)


class _WrongAxis(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1) / math.sqrt(self.head_dim)).softmax(-2)


class _DotProduct(_Tied):
    def attn(self, q, k):
        return (q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)).softmax(-1)


class _Cdist(_Tied):
    def attn(self, q, k):
        return (-torch.cdist(q, k).square() / math.sqrt(self.head_dim)).softmax(-1)


class _NoProj(_Tied):
    def merge(self, out, x):
        self.proj(x)  # computed, then forgotten
        return out.transpose(1, 2).reshape(x.shape)


class _BadSplit(_Tied):
    def split(self, t):
        B, N, _ = t.shape
        return t.view(B, self.num_heads, N, self.head_dim)


class _ZeroOutput(_Tied):
    def forward(self, x):
        return torch.zeros_like(x)


class _ScaleByDim(_Tied):
    def attn(self, q, k):
        D = self.num_heads * self.head_dim
        return (-_sq(q, k).sum(-1) / math.sqrt(D)).softmax(-1)  # the full width, not the head width


class _ScaleByDh(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1) / self.head_dim).softmax(-1)


class _ScaleByTokens(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1) / math.sqrt(q.shape[-2])).softmax(-1)


class _SoftmaxOverHeads(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1) / math.sqrt(self.head_dim)).softmax(1)


class _NoSoftmax(_Tied):
    def attn(self, q, k):
        return -_sq(q, k).sum(-1) / math.sqrt(self.head_dim)


class _NotSquared(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1).sqrt() / math.sqrt(self.head_dim)).softmax(-1)


class _CrossPlus(_Tied):
    def attn(self, q, k):
        q_sq = q.square().sum(-1, keepdim=True)
        return (
            -(q_sq + 2 * q @ k.transpose(-2, -1) + q_sq.transpose(-2, -1)) / math.sqrt(self.head_dim)
        ).softmax(-1)


class _SquaredNormAsColumn(_Tied):
    def attn(self, q, k):
        q_sq = q.square().sum(-1, keepdim=True)  # (B, H, N, 1)
        k_sq = k.square().sum(-1, keepdim=True)  # (B, H, N, 1): should be a row (B, H, 1, N)
        return (-(q_sq - 2 * q @ k.transpose(-2, -1) + k_sq) / math.sqrt(self.head_dim)).softmax(-1)


class _SdpaDefaultScale(_Tied):
    def forward(self, x):
        q, v = self.queries(x), self.values(x)
        q_aug = torch.cat([2 * q, torch.ones_like(q[..., :1])], dim=-1)
        k_aug = torch.cat([q, -q.square().sum(-1, keepdim=True)], dim=-1)
        return self.merge(F.scaled_dot_product_attention(q_aug, k_aug, v), x)  # scale 1/sqrt(Dh + 1)


class _NoHeads(_Tied):
    def forward(self, x):
        q, v = self.qk(x).unsqueeze(1), self.v(x).unsqueeze(1)  # (B, 1, N, D): one head over the full width
        return self.proj((self.attn(q, q) @ v).squeeze(1))


class _ValuesFromQk(_Tied):
    def values(self, x):
        return self.split(self.qk(x))


class _ValuesNotProjected(_Tied):
    def values(self, x):
        return self.split(x)


class _QueriesNotProjected(_Tied):
    def queries(self, x):
        return self.split(x)

    def keys(self, x):
        return self.split(x) + 0 * self.qk(x).sum()  # qk still "used"


class _KeysFromV(_Tied):
    def keys(self, x):
        return self.split(self.v(x))


class _MergeWithoutTranspose(_Tied):
    def merge(self, out, x):
        return self.proj(out.reshape(x.shape))


class _MergeWithView(_Tied):
    def merge(self, out, x):
        return self.proj(out.transpose(1, 2).view(x.shape))  # not contiguous after the transpose


class _SqueezeForOneToken(_Tied):
    def attn(self, q, k):
        q_sq = q.square().sum(-1, keepdim=True)  # (B, H, N, 1)
        k_sq = k.square().sum(-1, keepdim=True).squeeze().unsqueeze(-2)  # drops B, H or N when they are 1
        return (-(q_sq - 2 * q @ k.transpose(-2, -1) + k_sq) / math.sqrt(self.head_dim)).softmax(-1)


class _AttnDetached(_Tied):
    def attn(self, q, k):
        return super().attn(q, k).detach()


class _ValuesNoGrad(_Tied):
    def values(self, x):
        with torch.no_grad():
            return super().values(x)


class _NoBiases(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.qk, self.v = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)


class _QkOneHeadWide(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.qk = nn.Linear(dim, self.head_dim)  # one head's width, shared by all heads

    def queries(self, x):
        return self.qk(x).unsqueeze(1).expand(-1, self.num_heads, -1, -1)

    keys = queries


class _RenamedProj(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        del self.proj
        self.out = nn.Linear(dim, dim)

    def merge(self, out, x):
        return self.out(out.transpose(1, 2).reshape(x.shape))


class _KProjName(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.key_proj = nn.Linear(dim, dim)  # a second (D, D) projection, whatever its name

    def keys(self, x):
        return self.split(self.key_proj(x))


class _LearnedTemperature(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.temperature = nn.Parameter(torch.ones(()))

    def attn(self, q, k):
        return super().attn(q, k) ** self.temperature


test_module_mistakes_are_named = mistakes_are_named(
    check_l2_attention,
    [
        (_Untied, r"separate projections \(untied.*W_q = W_k.*self\.qk"),
        (_UntiedStacked, r"separate projections \(untied"),
        (_ExtraKey, r"separate projections \(untied"),
        (_PositiveDistance, r"minus sign is missing.*FARTHEST"),
        (_Mean, r"MEAN of the squared differences.*SUM"),
        (_NoScale, r"1/sqrt\(Dh\) scaling is missing"),
        (_ScaleAfterSoftmax, r"scaling is applied AFTER the softmax"),
        (_WrongAxis, r"softmax runs over the wrong axis.*dim=-1"),
        (_DotProduct, r"dot-product attention"),
        (_Cdist, r"torch\.cdist.*double backward"),
        (_NoProj, r"output projection self\.proj is missing"),
        (_BadSplit, r"heads are split wrongly"),
        (_ZeroOutput, r"the output differs from softmax"),
        (_ScaleByDim, r"scale is 1/sqrt\(D\).*full width.*HEAD width"),
        (_ScaleByDh, r"divided by Dh: divide by sqrt\(Dh\) once"),
        (_ScaleByTokens, r"number of tokens.*head width"),
        (_SoftmaxOverHeads, r"softmax runs over the HEADS.*dim=-1"),
        (_NoSoftmax, r"softmax is missing"),
        (_NotSquared, r"distance is not squared"),
        (_CrossPlus, r"cross term has the wrong sign"),
        (_SquaredNormAsColumn, r"\|k_j\|\^2 is added as a COLUMN.*row"),
        (_SdpaDefaultScale, r"default scale 1/sqrt\(Dh \+ 1\).*scale=1 / math\.sqrt\(self\.head_dim\)"),
        (_NoHeads, r"heads are never split"),
        (_ValuesFromQk, r"values come from self\.qk.*self\.v\(x\)"),
        (_ValuesNotProjected, r"values are the raw input x"),
        (_QueriesNotProjected, r"queries and keys are the raw input x"),
        (_KeysFromV, r"keys come from self\.v"),
        (_MergeWithoutTranspose, r"heads are merged wrongly.*transpose\(1, 2\)"),
        (_MergeWithView, r"Likely cause: `\.view` after `permute`/`transpose`.*reshape"),
        (_SqueezeForOneToken, r"passed the first sizes.*H = 1.*\.squeeze\(\) without an axis"),
        (_AttnDetached, r"qk\.weight gets no gradient.*detach"),
        (_ValuesNoGrad, r"v\.weight gets no gradient.*no_grad"),
        (_NoBiases, r"v\.bias is missing.*default bias"),
        (_QkOneHeadWide, r"qk\.weight has shape .* should be \(12, 12\).*nn\.Linear\(dim, dim\)"),
        (_RenamedProj, r"no self\.proj.*keep the names"),
        (_KProjName, r"separate projections \(untied"),
        (_LearnedTemperature, r"extra parameters temperature"),
    ],
)


class _NoRowTerm(_Tied):
    """Leaves out |q_i|^2, the same for every key of row i: the softmax does not change."""

    def attn(self, q, k):
        logits = (2 * q @ k.transpose(-2, -1) - k.square().sum(-1).unsqueeze(-2)) / math.sqrt(self.head_dim)
        return logits.softmax(dim=-1)


class _Einsum(nn.Module):
    """Another way to write it: reshape + permute, einsum, flatten, and a softmax module."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.h = num_heads
        self.qk = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)  # no parameters: does not change the layout
        self.drop = nn.Identity()

    def forward(self, x):
        B, N, D = x.shape
        q = self.qk(x).reshape(B, N, self.h, -1).permute(0, 2, 1, 3)  # (B, H, N, Dh)
        v = self.v(x).reshape(B, N, self.h, -1).permute(0, 2, 1, 3)
        dots = torch.einsum("bhid,bhjd->bhij", q, q)
        sq = dots.diagonal(dim1=-2, dim2=-1)  # |q_i|^2, (B, H, N)
        dist = sq[..., :, None] + sq[..., None, :] - 2 * dots
        attn = self.drop(self.softmax(-dist * q.shape[-1] ** -0.5))
        out = torch.einsum("bhij,bhjd->bhid", attn, v).permute(0, 2, 1, 3).flatten(2)
        return self.proj(out)


class _Sdpa(_Tied):
    """The package's fast trick: augmented vectors through F.scaled_dot_product_attention, scale given."""

    def forward(self, x):
        q, v = self.queries(x), self.values(x)
        q_aug = torch.cat([2 * q, torch.ones_like(q[..., :1])], dim=-1)
        k_aug = torch.cat([q, -q.square().sum(-1, keepdim=True)], dim=-1)
        out = F.scaled_dot_product_attention(q_aug, k_aug, v, scale=self.head_dim**-0.5)
        return self.merge(out, x)


class _NoQkBias(_Tied):
    def __init__(self, dim, num_heads):
        super().__init__(dim, num_heads)
        self.qk = nn.Linear(dim, dim, bias=False)  # the shared bias cancels in q_i - k_j


def _package_fast(dim, num_heads):
    return attention.L2MultiHeadAttention(dim, num_heads, fast=True)


test_module_alternatives_pass = alternatives_pass(
    check_l2_attention,
    [attention.L2MultiHeadAttention, _package_fast, _Tied, _NoRowTerm, _Einsum, _Sdpa, _NoQkBias],
)


def test_module_must_be_a_module_and_crashes_are_reported():
    class Crashes(_Tied):
        def forward(self, x):
            return x.view(-1, 7)

    assert_rejects(check_l2_attention, Crashes, r"your code raised RuntimeError")


def test_a_bias_free_tied_projection_is_accepted():
    # the shared qk bias cancels in every q_i - k_j: leaving it out is as right as keeping it
    class NoQkBias(attention.L2MultiHeadAttention):
        def __init__(self, dim, num_heads):
            super().__init__(dim, num_heads)
            self.qk = nn.Linear(dim, dim, bias=False)

    assert check_l2_attention(NoQkBias)
