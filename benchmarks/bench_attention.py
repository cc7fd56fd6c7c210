"""Time ViTGAN's L2 attention, naive (``fast=False``) vs ``scaled_dot_product_attention`` (``fast=True``).

Forward + backward of ``vitgan_lite.attention.L2MultiHeadAttention`` at the size of the
``seed-report-cifar10`` discriminator: batch 32, 65 tokens (8 x 8 patches + CLS), dim 300, 5 heads.
Both variants share weights and inputs and are timed in the same run, interleaved round by round so that
a busy machine slows both alike; the median per-iteration time is reported. Not a test.

    python benchmarks/bench_attention.py                  # CPU, 10 iterations
    python benchmarks/bench_attention.py --device cuda --iters 100

Note: the fast form attends with q/k of width Dh + 1 and values of width Dh; PyTorch's fused
(flash / memory-efficient) kernels need matching or aligned widths, so it usually runs SDPA's math
kernel, which is what keeps it double-backward safe. Expect a ratio near 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from vitgan_lite.attention import L2MultiHeadAttention  # noqa: E402


def _step(mod: L2MultiHeadAttention, x: torch.Tensor, w: torch.Tensor) -> float:
    """Seconds for one forward + backward, synchronized on CUDA."""
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    (mod(x) * w).sum().backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, time both variants, print their medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps, ... (default: cpu)")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per variant (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (default: 2)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=65)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--heads", type=int, default=5)
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error("--iters must be at least 1")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    fast = L2MultiHeadAttention(args.dim, args.heads, fast=True).to(device)
    naive = L2MultiHeadAttention(args.dim, args.heads, fast=False).to(device)
    naive.load_state_dict(fast.state_dict())  # same weights: the two compute the same function
    x = torch.randn(args.batch, args.tokens, args.dim, device=device, requires_grad=True)  # (B, N, D)
    w = torch.randn(args.batch, args.tokens, args.dim, device=device)  # (B, N, D), a random cotangent

    with torch.no_grad():
        max_diff = (fast(x) - naive(x)).abs().max().item()
    for _ in range(args.warmup):
        _step(naive, x, w), _step(fast, x, w)
    times: dict[str, list[float]] = {"naive": [], "fast": []}
    for _ in range(args.iters):  # interleaved: drift in machine load hits both variants
        times["naive"].append(_step(naive, x, w))
        times["fast"].append(_step(fast, x, w))

    t_naive, t_fast = statistics.median(times["naive"]), statistics.median(times["fast"])
    print(
        f"L2 attention forward+backward on {device} (torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads): batch {args.batch}, {args.tokens} tokens, dim {args.dim}, {args.heads} heads, "
        f"median of {args.iters}"
    )
    print(f"  naive (fast=False): {t_naive * 1e3:8.2f} ms")
    print(f"  fast  (fast=True):  {t_fast * 1e3:8.2f} ms")
    print(f"  ratio naive / fast: {t_naive / t_fast:8.2f}x   (max |output difference| {max_diff:.1e})")


if __name__ == "__main__":
    main()
