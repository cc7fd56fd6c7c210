"""Pictures for the lessons: image grids of [-1, 1] tensors, and the map of the model.

``model_map`` draws ViTGAN's generator and discriminator as two pipelines of boxes, each with the stage,
the lesson that builds it and the tensor shape measured by a forward hook on the package's own modules:
the map is drawn from the code, so it changes when the code or the config does (lessons 00, 05, 08).
"""

from __future__ import annotations

import textwrap

import torch

from vitgan_lite.config import Config, get_config

Stage = tuple[str, str, tuple[int, ...]]  # (name, lesson, shape): "title: detail", "lesson 06", (B, ...)
NETWORKS = ("G", "D")


def image_grid(x: torch.Tensor, nrow: int = 8, padding: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] -> one grid image (H', W', C) in [0, 1], ready for imshow."""
    from torchvision.utils import make_grid

    grid = make_grid(
        x.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5, nrow=nrow, padding=padding, pad_value=pad_value
    )  # (C, H', W')
    return grid.permute(1, 2, 0)  # (H', W', C)


def show_images(x: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, scale: float = 0.6):
    """Show a batch of [-1, 1] images as a grid; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    grid = image_grid(x, nrow=nrow)
    if ax is None:
        h, w = grid.shape[:2]
        _, ax = plt.subplots(figsize=(max(2.0, scale * w / 12), max(2.0, scale * h / 12)))
    ax.imshow(
        grid.squeeze(-1) if grid.shape[-1] == 1 else grid,
        cmap="gray" if grid.shape[-1] == 1 else None,
        interpolation="nearest",
    )
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


# ---- the map of the model ---------------------------------------------------------------------------


def _measure(
    cfg: Config, batch_size: int
) -> tuple[dict[str, tuple[int, ...]], torch.nn.Module, torch.nn.Module]:
    """Build G and D from ``cfg`` and run z -> G -> D once, recording shapes with forward hooks."""
    from vitgan_lite.discriminator import ViTDiscriminator
    from vitgan_lite.generator import ViTGenerator

    shapes: dict[str, tuple[int, ...]] = {}

    def output_of(key):
        return lambda module, args, output: shapes.__setitem__(key, tuple(output.shape))

    def input_of(key):
        return lambda module, args: shapes.__setitem__(key, tuple(args[0].shape))

    # fork_rng: building and sampling draw random numbers, and a picture must not move the caller's seed
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(cfg.seed)
        G = ViTGenerator.from_config(cfg).eval()
        D = ViTDiscriminator.from_config(cfg).eval()
        handles = [
            G.mapping.register_forward_pre_hook(input_of("G.z")),
            G.mapping.register_forward_hook(output_of("G.w")),
            G.blocks[0].register_forward_pre_hook(input_of("G.h0")),  # h_0 = E_pos (+ Linear(w)), batched
            G.blocks[-1].register_forward_hook(output_of("G.blocks")),
            G.norm.register_forward_hook(output_of("G.norm")),
            G.decoder.register_forward_hook(output_of("G.decoder")),
            G.register_forward_hook(output_of("G.image")),  # unpatchify, then tanh
            D.patch_embed.register_forward_pre_hook(input_of("D.image")),
            D.patch_embed.register_forward_hook(output_of("D.patch_embed")),
            D.blocks[0].register_forward_pre_hook(input_of("D.h0")),  # CLS prepended, E_pos added
            D.blocks[-1].register_forward_hook(output_of("D.blocks")),
            D.norm.register_forward_hook(output_of("D.norm")),
            D.register_forward_hook(output_of("D.logit")),  # head, squeezed to one logit per image
        ]
        try:
            D(G(torch.randn(batch_size, cfg.latent_dim)))  # the generated image is what D reads
        finally:
            for handle in handles:
                handle.remove()
    return shapes, G, D


def model_stages(cfg: Config | None = None, batch_size: int = 1) -> dict[str, list[Stage]]:
    """The stages of G and D with the shapes one forward pass really gives: ``{"G": [...], "D": [...]}``.

    Each stage is ``(name, lesson, shape)``: ``name`` is ``"title: detail"``, ``lesson`` the lesson that
    builds it, ``shape`` the tensor's shape measured by a forward hook on the networks that
    ``ViTGenerator.from_config(cfg)`` and ``ViTDiscriminator.from_config(cfg)`` build (batch first).
    ``cfg`` defaults to ``get_config("paper-cifar10")``. The global torch RNG is left as it was.
    """
    cfg = get_config("paper-cifar10") if cfg is None else cfg
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    s, G, D = _measure(cfg, batch_size)
    depth_g, heads_g = len(G.blocks), G.blocks[0].attn.num_heads
    depth_d, heads_d = len(D.blocks), D.blocks[0].attn.num_heads
    sln = cfg.g_modulation == "sln"
    norm = "SLN(h, w)" if sln else "LayerNorm"
    if cfg.g_patch_head == "linear":
        decoder = ("patch head: Linear(y) per token, no decoder", "lesson 13")
    elif cfg.g_fourier_features:
        decoder = ("patch decoder: E_fou, modulated SIREN per token", "lesson 07")
    else:
        decoder = ("patch decoder: raw coordinates, modulated SIREN", "lessons 07, 13")
    h0 = (
        ("h₀ = E_pos: positions only, no image", "lesson 02")
        if sln
        else ("h₀ = E_pos + Linear(w): w at the input", "lesson 13")
    )
    generator = [
        ("z: Gaussian noise", "lesson 08", s["G.z"]),
        (f"mapping network: {len(G.mapping.layers)} layers, z → w", "lesson 06", s["G.w"]),
        (*h0, s["G.h0"]),
        (
            f"blocks ×{depth_g}: {norm}, attention ({heads_g} heads), MLP",
            "lessons 03, 06, 08" if sln else "lessons 03, 08, 13",
            s["G.blocks"],
        ),
        (f"{norm}: the last norm, y", "lesson 06" if sln else "lesson 13", s["G.norm"]),
        (*decoder, s["G.decoder"]),
        ("unpatchify, tanh: image in [-1, 1]", "lessons 01, 00", s["G.image"]),
    ]
    embed = D.patch_embed
    k, overlap = embed.proj.kernel_size[0], "overlapping" if embed.overlap else "no overlap"
    attention = "L2 attention" if cfg.d_attention == "l2" else "dot attention"
    spectral = {"isn": "ISN", "sn": "SN", "none": "no SN"}[cfg.d_spectral_norm]
    discriminator = [
        ("image: real or generated", "lesson 00", s["D.image"]),
        (
            f"patch embedding: {overlap}, conv {k}×{k}, stride {embed.patch_size}",
            "lesson 01",
            s["D.patch_embed"],
        ),
        ("+ CLS, + E_pos: CLS token first", "lessons 02, 05", s["D.h0"]),
        (
            f"blocks ×{depth_d}: LN, {attention} ({heads_d} heads), MLP, {spectral}",
            "lessons 03, 04, 05",
            s["D.blocks"],
        ),
        ("LayerNorm: of the CLS token only", "lesson 05", s["D.norm"]),
        ("head: Linear → one logit", "lesson 05", s["D.logit"]),
    ]
    return {"G": generator, "D": discriminator}


# colours: light fills under black text, a dark edge and shape text of the same hue (contrast > 7:1)
_STYLE = {
    "G": {"face": "#dbe8f6", "edge": "#1f4e79", "title": "Generator G: z → image (lesson 08)"},
    "D": {"face": "#fce3cf", "edge": "#8a3a00", "title": "Discriminator D: image → logit (lesson 05)"},
    "data": {"face": "#f0f0f0", "edge": "#4d4d4d"},  # the inputs: tensors, not modules
}
# layout, in inches: heading, row header, box height, gap between rows, margins, the gap an arrow spans
_TITLE, _HEADER, _BOX_H, _ROW_GAP, _BOTTOM, _SIDE, _ARROW, _PAD = 0.5, 0.35, 1.45, 0.45, 0.12, 0.12, 0.3, 0.08
_INK, _MUTED = "#333333", "#404040"


def _format_shape(shape: tuple[int, ...], batch_size: int) -> str:
    """``(1, 64, 384)`` -> ``"(B, 64, 384)"``: the batch is drawn as B, named once in the heading."""
    dims = ["B" if i == 0 and d == batch_size else str(d) for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + (",)" if len(dims) == 1 else ")")


def _extent(text, renderer) -> tuple[float, float]:
    """Width and height of a Text in inches."""
    box = text.get_window_extent(renderer)
    dpi = text.figure.dpi
    return box.width / dpi, box.height / dpi


def _fit(text, raw: str, renderer, max_width: float, min_size: float = 6.0) -> None:
    """Wrap ``raw`` into as few lines as fit ``max_width`` inches, then shrink the font if it must."""
    if renderer is None:  # a canvas that cannot measure text: keep a plain wrap
        text.set_text(textwrap.fill(raw, 20))
        return
    while True:
        for width in range(len(raw), min(len(raw), 8) - 1, -1):  # one line first, then ever more lines
            text.set_text(textwrap.fill(raw, width, break_long_words=False))
            if _extent(text, renderer)[0] <= max_width:
                return
        if text.get_fontsize() <= min_size:
            return
        text.set_fontsize(text.get_fontsize() - 0.5)


def _draw_box(ax, renderer, x0, y0, w, h, stage: Stage, batch_size: int, colours, shape_colour, gid):
    from matplotlib.patches import FancyBboxPatch

    name, lesson, shape = stage
    title, _, detail = name.partition(": ")
    ax.add_patch(
        FancyBboxPatch(
            (x0, y0),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=colours["face"],
            edgecolor=colours["edge"],
            linewidth=1.2,
            linestyle="--" if colours is _STYLE["data"] else "-",
            gid=gid,
        )
    )
    cx, inner = x0 + w / 2, w - 2.5 * _PAD
    kw = dict(ha="center", gid=gid + ":text")
    # from the top: the stage in bold, then what it does; from the bottom: the lesson, then the shape
    top = ax.text(cx, y0 + h - _PAD, title, va="top", fontsize=9.5, fontweight="bold", **kw)
    _fit(top, title, renderer, inner)
    y_detail = y0 + h - _PAD - (_extent(top, renderer)[1] if renderer else 0.2) - 0.06
    what = ax.text(cx, y_detail, detail, va="top", fontsize=8, linespacing=1.15, **kw)
    _fit(what, detail, renderer, inner)
    low = ax.text(cx, y0 + _PAD, lesson, va="bottom", fontsize=8, style="italic", color=_MUTED, **kw)
    _fit(low, lesson, renderer, inner)
    y_shape = y0 + _PAD + (_extent(low, renderer)[1] if renderer else 0.15) + 0.08
    text = _format_shape(shape, batch_size)
    size = ax.text(
        cx,
        y_shape,
        text,
        va="bottom",
        fontsize=10,
        family="monospace",
        fontweight="bold",
        color=shape_colour,
        **kw,
    )
    _fit(size, text, renderer, inner)
    if renderer is not None:  # a long detail gives way to the shape under it
        while (
            y_detail - _extent(what, renderer)[1] < y_shape + _extent(size, renderer)[1] + 0.04
            and what.get_fontsize() > 6
        ):
            what.set_fontsize(what.get_fontsize() - 0.5)
            _fit(what, detail, renderer, inner)


def _arrow(ax, start, end):
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=_INK, lw=1.3))


def model_map(cfg: Config | None = None, batch_size: int = 1, which=NETWORKS, ax=None):
    """Draw the map of ViTGAN: G and/or D as pipelines of boxes with measured shapes; returns the Figure.

    Every box names a stage, the lesson that builds it and the shape that a forward hook measured on the
    networks built from ``cfg`` (default ``paper-cifar10``) for a batch of ``batch_size`` (see
    :func:`model_stages`); the inputs (z, the image D reads) have dashed edges. ``which``: ``("G", "D")``
    (G left to right, its image handed down to D, which then reads right to left), ``("G",)`` or
    ``("D",)``. ``ax``: draw into this Axes (its axis is switched off) instead of a new 12-inch figure.
    """
    import matplotlib.pyplot as plt

    cfg = get_config("paper-cifar10") if cfg is None else cfg
    which = (which,) if isinstance(which, str) else tuple(which)
    if not which or len(set(which)) != len(which) or not set(which) <= set(NETWORKS):
        raise ValueError(f"which must name 'G', 'D' or both, once each, got {which!r}")
    stages = model_stages(cfg, batch_size)
    rows = [(name, stages[name]) for name in which]
    snake = which == NETWORKS  # D starts under G's image and reads right to left
    if ax is None:
        height = _TITLE + len(rows) * (_HEADER + _BOX_H) + (len(rows) - 1) * _ROW_GAP + _BOTTOM
        fig = plt.figure(figsize=(12, height))
        ax = fig.add_axes((0, 0, 1, 1))
    fig = ax.figure
    get_renderer = getattr(fig.canvas, "get_renderer", None)
    renderer = get_renderer() if get_renderer is not None else None
    bbox = ax.get_position()
    width, height = bbox.width * fig.get_figwidth(), bbox.height * fig.get_figheight()
    box_h = (height - _TITLE - _BOTTOM - len(rows) * _HEADER - (len(rows) - 1) * _ROW_GAP) / len(rows)
    if box_h < 0.8:
        raise ValueError(f"the Axes is too small for the map: make it at least {2.5 * len(rows):.1f} in tall")
    ax.set_xlim(0, width)  # data units are inches: box sizes and font sizes compare directly
    ax.set_ylim(0, height)
    ax.set_axis_off()
    slot = (width - 2 * _SIDE) / max(len(row) for _, row in rows)
    box_w = slot - _ARROW
    heading = {("G",): "ViTGAN's generator", ("D",): "ViTGAN's discriminator"}.get(which, "ViTGAN")
    ax.text(
        _SIDE,
        height - 0.12,
        f"{heading} · preset {cfg.preset}: shapes measured by forward hooks, batch B = {batch_size}",
        ha="left",
        va="top",
        fontsize=11,
        fontweight="bold",
        gid="model_map:title",
    )
    ends = {}
    for r, (name, row) in enumerate(rows):
        style = _STYLE[name]
        top = height - _TITLE - r * (_HEADER + box_h + _ROW_GAP)
        ax.text(
            _SIDE,
            top - 0.05,
            style["title"],
            ha="left",
            va="top",
            fontsize=10.5,
            color=style["edge"],
            fontweight="bold",
            gid=f"model_map:{name}",
        )
        y0, y_mid = top - _HEADER - box_h, top - _HEADER - box_h / 2
        backwards = snake and name == "D"
        n = max(len(row) for _, row in rows)
        xs = [_SIDE + (n - 1 - i if backwards else i) * slot + _ARROW / 2 for i in range(len(row))]
        for i, (stage, x0) in enumerate(zip(row, xs)):
            colours = _STYLE["data"] if i == 0 else style
            _draw_box(
                ax,
                renderer,
                x0,
                y0,
                box_w,
                box_h,
                stage,
                batch_size,
                colours,
                style["edge"],
                gid=f"model_map:{name}:{i}",
            )
            if i:
                _arrow(ax, (xs[i - 1], y_mid), (x0 + box_w, y_mid)) if backwards else _arrow(
                    ax, (xs[i - 1] + box_w, y_mid), (x0, y_mid)
                )
        ends[name] = (xs[0], xs[-1], y0)
    if snake:  # G's image goes down into the first box of D
        x = ends["G"][1] + box_w / 2
        _arrow(ax, (x, ends["G"][2]), (ends["D"][0] + box_w / 2, ends["D"][2] + box_h))
        ax.text(
            x - 0.1,
            ends["G"][2] - _ROW_GAP / 2,
            "D reads G(z), and real images",
            ha="right",
            va="center",
            fontsize=8.5,
            style="italic",
            color=_MUTED,
            gid="model_map:handover",
        )
    return fig


__all__ = ["NETWORKS", "image_grid", "model_map", "model_stages", "show_images"]
