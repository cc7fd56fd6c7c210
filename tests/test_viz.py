"""The map of the model (lessons 00, 05, 08) is drawn from the package: measured shapes, legible text."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vitgan_lite.config import get_config  # noqa: E402
from vitgan_lite.viz import _format_shape, model_map, model_stages  # noqa: E402


@pytest.fixture(scope="module")
def paper_stages():
    return model_stages(get_config("paper-cifar10"))


def shapes(stages, net):
    return [shape for _, _, shape in stages[net]]


def test_stages_measure_the_paper_networks(paper_stages):
    G, D = paper_stages["G"], paper_stages["D"]
    assert shapes(paper_stages, "G") == [
        (1, 384),  # z
        (1, 384),  # w
        (1, 64, 384),  # h_0 = E_pos, batched
        (1, 64, 384),  # after the blocks
        (1, 64, 384),  # y = SLN(h_L, w)
        (1, 64, 48),  # patch decoder: C * P * P = 3 * 4 * 4
        (1, 3, 32, 32),  # unpatchify, tanh
    ]
    assert G[-1][2] == (1, 3, 32, 32)
    assert shapes(paper_stages, "D") == [
        (1, 3, 32, 32),
        (1, 64, 192),
        (1, 65, 192),
        (1, 65, 192),
        (1, 192),
        (1,),
    ]
    cls = next(stage for stage in D if "CLS" in stage[0])
    assert cls[2] == (1, 65, 192), "64 patch tokens + the CLS token"
    for name, lesson, _ in G + D:
        assert ": " in name and lesson.startswith("lesson"), (name, lesson)
    assert "blocks ×4" in G[3][0] and "6 heads" in G[3][0]
    assert "L2 attention" in D[3][0] and "ISN" in D[3][0]


def test_stages_follow_the_config_not_a_drawing(paper_stages):
    tiny = model_stages(get_config("tiny-cpu"), batch_size=3)
    assert shapes(tiny, "G")[1:5] == [(3, 64), (3, 64, 64), (3, 64, 64), (3, 64, 64)]
    assert shapes(tiny, "D")[1:5] == [(3, 64, 64), (3, 65, 64), (3, 65, 64), (3, 64)]
    assert shapes(tiny, "D")[-1] == (3,)
    assert shapes(tiny, "G") != shapes(paper_stages, "G")
    assert "blocks ×2" in tiny["G"][3][0]
    other = model_stages(
        get_config("tiny-cpu", image_size=16, g_patch_size=2, d_overlap=0, g_patch_head="linear")
    )
    assert shapes(other, "G")[-2:] == [(1, 64, 12), (1, 3, 16, 16)]  # 8 x 8 tokens of 2 x 2 patches
    assert shapes(other, "D")[2] == (1, 17, 64)  # 16 / 4 = 4 x 4 tokens + CLS
    assert "no overlap" in other["D"][1][0] and "Linear" in other["G"][5][0]


def test_stages_and_map_leave_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    model_stages(get_config("tiny-cpu"))
    fig = model_map(get_config("tiny-cpu"), which=("D",))
    plt.close(fig)
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match="batch_size"):
        model_stages(get_config("tiny-cpu"), batch_size=0)


def text_by_gid(fig, gid):
    return [t for t in fig.axes[0].texts if t.get_gid() == gid]


@pytest.mark.parametrize("preset", ["paper-cifar10", "tiny-cpu"])
def test_map_draws_both_pipelines_with_the_measured_shapes(preset):
    cfg = get_config(preset)
    fig = model_map(cfg)
    try:
        assert isinstance(fig, matplotlib.figure.Figure)
        assert 11 <= fig.get_figwidth() <= 13 and 4 <= fig.get_figheight() <= 6
        texts = fig.axes[0].texts
        assert len(text_by_gid(fig, "model_map:G")) == len(text_by_gid(fig, "model_map:D")) == 1
        stages = model_stages(cfg)
        drawn = [t.get_text() for t in texts]
        for net in ("G", "D"):
            for i, (_, lesson, shape) in enumerate(stages[net]):
                box = [t.get_text() for t in text_by_gid(fig, f"model_map:{net}:{i}:text")]
                assert len(box) == 4 and _format_shape(shape, 1) in box and lesson in box, (net, i, box)
        assert len(texts) == 1 + 2 + 4 * (len(stages["G"]) + len(stages["D"])) + 1  # + the hand-over
        assert "(B, 3, 32, 32)" in drawn and preset in drawn[0]
    finally:
        plt.close(fig)


@pytest.mark.parametrize("preset", ["paper-cifar10", "tiny-cpu"])
@pytest.mark.parametrize("which", [("G", "D"), ("G",), ("D",)])
def test_map_text_does_not_overlap_and_stays_in_its_box(preset, which):
    fig = model_map(get_config(preset), which=which)
    try:
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        fig.draw(renderer)
        extents = [(t.get_gid(), t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
        assert [bool(text_by_gid(fig, f"model_map:{net}")) for net in ("G", "D")] == [
            n in which for n in "GD"
        ]
        for (_, s1, e1), (_, s2, e2) in itertools.combinations(extents, 2):
            assert not e1.overlaps(e2), f"{s1!r} overlaps {s2!r}"
        figure_box = fig.bbox
        boxes = {p.get_gid(): p.get_window_extent(renderer) for p in ax.patches if p.get_gid()}
        for gid, text, extent in extents:
            assert figure_box.x0 <= extent.x0 and extent.x1 <= figure_box.x1, f"{text!r} leaves the figure"
            assert figure_box.y0 <= extent.y0 and extent.y1 <= figure_box.y1, f"{text!r} leaves the figure"
            if gid.endswith(":text"):
                box = boxes[gid.removesuffix(":text")]
                assert box.x0 < extent.x0 and extent.x1 < box.x1, f"{text!r} sticks out of its box"
                assert box.y0 < extent.y0 and extent.y1 < box.y1, f"{text!r} sticks out of its box"
        for b1, b2 in itertools.combinations(boxes.values(), 2):
            assert not b1.overlaps(b2)
    finally:
        plt.close(fig)


def test_map_draws_into_a_given_axes_and_refuses_unknown_networks():
    fig, ax = plt.subplots(figsize=(12, 3))
    try:
        assert model_map(get_config("tiny-cpu"), which="G", ax=ax) is fig
        assert text_by_gid(fig, "model_map:G") and not text_by_gid(fig, "model_map:D")
        assert not ax.axison
    finally:
        plt.close(fig)
    for bad in [(), ("G", "G"), ("E",)]:
        with pytest.raises(ValueError, match="which"):
            model_map(get_config("tiny-cpu"), which=bad)
