"""Train the CIFAR-10 classifier whose features define cFD / cKID (``vitgan_lite.quality``).

    VITGAN_LITE_DATA=/path/to/cifar10 python tools/train_feature_net.py            # ~20 min, 1 CPU thread

Reproducible: seeded initialisation, shuffling and augmentation, one CPU thread by default (``--threads``).
Augmentation: random 32x32 crop of the 4-pixel zero-padded image (zero = mid-grey in [-1, 1]) and a
horizontal flip. SGD with Nesterov momentum and a one-cycle learning rate. Prints the running train
accuracy (augmented batches, train mode) and the test accuracy after each epoch; at the end it writes a
float16 state dict plus metadata (test accuracy of the float16 weights, epochs, seed, feature width,
torch version) atomically to ``vitgan_lite/assets/cifar_feature_net.pt``.

Changing the weights changes every cFD / cKID number: rerun ``tools/quality_scale.py`` afterwards, and
never compare numbers computed with different weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from vitgan_lite.data import default_source, load_images, to_float  # noqa: E402
from vitgan_lite.quality import DEFAULT_WEIGHTS, CifarFeatureNet, load_feature_net  # noqa: E402

PAD = 4


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded image and a random horizontal flip; ``x (B, 3, 32, 32)`` float."""
    B, _, H, W = x.shape
    xp = F.pad(x, (PAD, PAD, PAD, PAD))  # (B, 3, H + 8, W + 8)
    oy = torch.randint(0, 2 * PAD + 1, (B,), generator=g)  # (B,)
    ox = torch.randint(0, 2 * PAD + 1, (B,), generator=g)  # (B,)
    rows = (oy[:, None] + torch.arange(H))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(W))[:, None, None, :]  # (B, 1, 1, W)
    out = xp[torch.arange(B)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    flip = torch.rand(B, generator=g) < 0.5  # (B,)
    return torch.where(flip[:, None, None, None], out.flip(3), out)  # (B, 3, H, W)


@torch.no_grad()
def accuracy(
    net: CifarFeatureNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> float:
    net.eval()
    correct = 0
    for s in range(0, images.shape[0], batch_size):
        x = to_float(images[s : s + batch_size]).contiguous(memory_format=torch.channels_last)
        correct += int((net(x).argmax(1) == labels[s : s + batch_size]).sum())
    return correct / images.shape[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default=None, help="CIFAR-10 source (default: $VITGAN_LITE_DATA or 'cifar10')")
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="weights file to write")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps runs reproducible)")
    p.add_argument(
        "--per-class", type=int, default=None, help="train on this many images a class (smoke test)"
    )
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    source = args.source or default_source()

    t0 = time.time()
    train = load_images(source, "train", 32, per_class=args.per_class)
    test = load_images(source, "test", 32, per_class=None if args.per_class is None else args.per_class // 5)
    if len(train.classes) != 10:
        raise SystemExit(f"expected CIFAR-10's 10 classes in {source}, found {len(train.classes)}")
    print(
        f"loaded {len(train)} train / {len(test)} test images from {source} in {time.time() - t0:.0f}s",
        flush=True,
    )

    net = CifarFeatureNet().to(memory_format=torch.channels_last)
    decay = [p_ for n, p_ in net.named_parameters() if p_.ndim > 1]  # conv / linear weights
    no_decay = [p_ for n, p_ in net.named_parameters() if p_.ndim <= 1]  # BN, biases
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
    )
    N = len(train)
    steps_per_epoch = N // args.batch_size  # drop the last partial batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.25
    )
    t_train = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(N, generator=g)  # (N,)
        correct = seen = 0
        loss_sum = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]  # (B,)
            x = augment(to_float(train.images[idx]), g).contiguous(memory_format=torch.channels_last)
            y = train.labels[idx]  # (B,)
            logits = net(x)  # (B, 10)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            correct += int((logits.argmax(1) == y).sum())
            seen += y.shape[0]
            loss_sum += float(loss.detach()) * y.shape[0]
        test_acc = accuracy(net, test.images, test.labels)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / seen:.3f}, train acc (augmented, running) "
            f"{correct / seen:.4f}, test acc {test_acc:.4f}, {time.time() - t_train:.0f}s",
            flush=True,
        )

    # store float16, and report the accuracy of what is stored (float16 weights loaded back to float32)
    state16 = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    if not all(torch.isfinite(v).all() for v in state16.values() if v.is_floating_point()):
        raise SystemExit("a weight overflows float16; lower the learning rate or store float32")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state16.items()})
    test_acc16 = accuracy(net, test.images, test.labels)
    meta = {
        "test_accuracy": round(test_acc16, 4),
        "test_images": len(test),
        "train_images": len(train),
        "epochs": args.epochs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "feature_dim": net.feature_dim,
        "widths": list(net.widths),
        "torch": str(torch.__version__),  # TorchVersion is not loadable with weights_only=True
        "train_seconds": round(time.time() - t_train),
        "threads": args.threads,
        "script": "tools/train_feature_net.py",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    torch.save({"state_dict": state16, "meta": meta}, tmp)
    check = load_feature_net(tmp)  # what every user does: weights_only=True, float16 -> float32
    if accuracy(check, test.images, test.labels) != test_acc16:
        raise SystemExit(f"{tmp} does not reload to the net just evaluated; {out} was left as it was")
    os.replace(tmp, out)  # atomic: a reader sees the old file or the new one, never half of one
    print(
        f"float16 test accuracy {test_acc16:.4f}; wrote {out} ({out.stat().st_size / 1e6:.2f} MB)", flush=True
    )
    print(f"meta: {meta}", flush=True)


if __name__ == "__main__":
    main()
