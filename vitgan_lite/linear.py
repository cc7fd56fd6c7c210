"""``nn.Linear`` whose matrix product can run in row blocks: a CPU speed detail, not part of ViTGAN.

Used for the transformer blocks' layers (attention and MLP) of G and D. ``Linear`` is ``nn.Linear`` (same
parameters, state dict, initialisation and function; ``isinstance(layer, nn.Linear)`` holds) with one knob,
``row_block``, off by default. The trainer turns it on for CPU runs (:func:`set_row_block` in
``vitgan_lite.run.trainer.build_parts``; course choice).

Why: on the course's 2-core CPU (MKL sgemm, torch 2.14) a product with many rows runs far below the
machine's GEMM speed for some widths. The D step runs D once over 4 x 32 images of 65 tokens, 8,320 rows;
at seed-report-cifar10's width 300 its (8320, 300) x (300, 300) product reaches 0.5-0.6 of a 1024-cube
``matmul``'s FLOP/s, and the same product in 1024-row blocks 0.8-0.9. Narrow layers (tiny-cpu's 64 and
256) lose a little in blocks instead, so blocks are only used where the weight has at least
``MIN_WEIGHT`` entries (a quarter of a core's 1 MiB L2 cache in float32) and the input at least
``MIN_BLOCKS * row_block`` rows. Course choice, measured: ``python -m vitgan_lite bench --gemm`` times
every product of an iteration plain and in 512 / 1024 / 2048-row blocks (``vitgan_lite.run.bench``).

What the blocks change: nothing but speed. The forward product and the input gradient are computed block by
block; row i of ``x W^T + b`` only reads row i of x, so the result is the same function. The weight
gradient ``g^T x`` sums over all rows and stays one product, in the order ``nn.Linear``'s backward uses,
so on the course's CPU the blocked layer gives bit-identical outputs and gradients
(``tests/test_linear.py``). Each block writes its rows of one output tensor (no copy); under
``torch.compile``, and in a double backward (``create_graph=True``), the blocks are concatenated instead.
Under autocast (bf16 / fp16 mixed precision) the layer runs as one product, as ``nn.Linear``.

Shape legend: ``R`` rows (every leading axis of the input flattened), ``I`` input width, ``O`` output width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ROW_BLOCK = 1024  # rows per block on the CPU: measured best of 512 / 1024 / 2048 (bench --gemm)
MIN_BLOCKS = 4  # inputs with fewer than MIN_BLOCKS * row_block rows run as one product (2,048 rows do well)
MIN_WEIGHT = 256 * 256  # in_features * out_features below this run as one product (narrow layers lose)


class _RowBlockedLinear(torch.autograd.Function):
    """``x (R, I) @ weight (O, I)^T + bias (O,)`` with the forward and the input gradient in row blocks."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        block: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.block, ctx.has_bias = block, bias is not None
        if torch.compiler.is_compiling():  # traceable form; the compiler plans the copies
            return torch.cat([F.linear(part, weight, bias) for part in x.split(block)])  # (R, O)
        out = x.new_empty(x.shape[0], weight.shape[0])  # (R, O), each block writes its rows: no copy
        for start in range(0, x.shape[0], block):
            rows = slice(start, start + block)
            if bias is None:
                torch.mm(x[rows], weight.t(), out=out[rows])
            else:
                torch.addmm(bias, x[rows], weight.t(), out=out[rows])
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple:  # grad (R, O)
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            if torch.is_grad_enabled() or torch.compiler.is_compiling():  # a double backward: differentiable
                grad_x = torch.cat([part @ weight for part in grad.split(ctx.block)])  # (R, I)
            else:
                grad_x = grad.new_empty(x.shape)  # (R, I)
                for start in range(0, x.shape[0], ctx.block):
                    rows = slice(start, start + ctx.block)
                    torch.mm(grad[rows], weight, out=grad_x[rows])
        if ctx.needs_input_grad[1]:
            grad_w = grad.t() @ x  # (O, I): one product over all R rows, as nn.Linear's backward
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)  # (O,)
        return grad_x, grad_w, grad_b, None


def linear_in_row_blocks(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, block: int = ROW_BLOCK
) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` computed ``block`` rows at a time. ``x (..., I) -> (..., O)``."""
    if block < 1:
        raise ValueError(f"block must be a positive number of rows, got {block}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"x must have shape (..., {weight.shape[-1]}) to match weight {tuple(weight.shape)}, "
            f"got {tuple(x.shape)}"
        )
    rows = x.reshape(-1, x.shape[-1])  # (R, I)
    out = _RowBlockedLinear.apply(rows, weight, bias, block)  # (R, O)
    return out.view(*x.shape[:-1], weight.shape[0])  # (..., O)


class Linear(nn.Linear):
    """``nn.Linear`` that runs inputs of at least ``MIN_BLOCKS * row_block`` rows in ``row_block``-row
    blocks when ``row_block`` is set and the weight has at least ``MIN_WEIGHT`` entries (None, the
    default: exactly ``nn.Linear``).

    Forward ``(..., I) -> (..., O)``.
    """

    row_block: int | None = None  # set per layer by set_row_block; an attribute, not a parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.row_block
        if (
            block is None
            or self.in_features * self.out_features < MIN_WEIGHT
            or x.ndim == 0
            or x.numel() < MIN_BLOCKS * block * x.shape[-1]
            or torch.is_autocast_enabled(x.device.type)  # autocast's casts are F.linear's business
        ):
            return F.linear(x, self.weight, self.bias)
        # self.weight is read once: under ISN reading it runs the power iteration
        return linear_in_row_blocks(x, self.weight, self.bias, block)


def set_row_block(module: nn.Module, block: int | None = ROW_BLOCK) -> int:
    """Set ``row_block`` on every :class:`Linear` inside ``module`` (None turns blocking off).

    Returns the number of layers set; the parameters and the function do not change.
    """
    if block is not None and block < 1:
        raise ValueError(f"block must be a positive number of rows or None, got {block}")
    layers = [m for m in module.modules() if isinstance(m, Linear)]
    for layer in layers:
        layer.row_block = block
    return len(layers)


__all__ = ["Linear", "MIN_BLOCKS", "MIN_WEIGHT", "ROW_BLOCK", "linear_in_row_blocks", "set_row_block"]
