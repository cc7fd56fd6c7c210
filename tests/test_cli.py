"""Tests of vitgan_lite/cli.py: `python -m vitgan_lite train | sample | evaluate` through main(argv)."""

from __future__ import annotations

import json
import re

import pytest
from helpers import write_image_folder
from PIL import Image

import vitgan_lite.run.fidelity as fidelity_mod
from vitgan_lite.config import ConfigError
from vitgan_lite.metrics import MetricsUnavailable
from vitgan_lite.run.checkpoints import list_checkpoints, load_checkpoint
from vitgan_lite.run.cli import main, parse_value

TINY_FLAGS = [
    "--preset", "tiny-cpu",
    "--set", "image_size=16", "--set", "latent_dim=16", "--set", "style_dim=16",
    "--set", "mapping_layers=1", "--set", "g_dim=16", "--set", "g_depth=1", "--set", "g_fourier_dim=16",
    "--set", "g_decoder_dim=16", "--set", "d_dim=16", "--set", "d_depth=1",
    "--set", "log_every=1", "--set", "sample_every=2", "--set", "fid_num_samples=0", "--set", "cfd_every=0",
    "--batch-size", "4", "--ckpt-every", "2", "--device", "cpu",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"), 8)


@pytest.fixture(scope="module")
def run(tmp_path_factory, image_folder):
    """A 3-step run through the command line; its folder."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY_FLAGS, "--out", str(out), "--data", str(image_folder), "--steps", "3"]) == 0
    return out


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    err = [line for line in lines if "error" in line or "Traceback" in line]
    assert len(err) == 1, f"expected one clear error line on stderr, got {lines}"
    assert err[0].startswith("vitgan-lite: error: ")
    return err[0]


def test_train_writes_a_run(run):
    assert [p.name for p in list_checkpoints(run)] == ["ckpt_0000002.pt", "ckpt_0000003.pt"]
    state = load_checkpoint(run / "ckpt_0000003.pt")
    cfg = state["config"]
    # --set, --field-name and --steps all reached the config
    assert (cfg["batch_size"], cfg["g_dim"], cfg["ckpt_every"], cfg["steps"]) == (4, 16, 2, 3)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[:3] == [1, 2, 3]


def test_resume_without_preset_uses_the_checkpoint_config(run, image_folder, capsys):
    argv = ["train", "--out", str(run), "--resume", "--steps", "4", "--device", "cpu"]
    assert main(argv) == 0
    assert "resumed from" in capsys.readouterr().err
    assert load_checkpoint(run / "ckpt_0000004.pt")["config"]["g_dim"] == 16


def test_resume_with_another_architecture_is_refused(run, capsys):
    argv = ["train", *TINY_FLAGS, "--out", str(run), "--resume", "--set", "g_dim=32", "--steps", "9"]
    assert main(argv) == 2
    assert "g_dim: 16 vs 32" in one_error_line(capsys)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--preset", "nope", "--out", "x"], "unknown preset 'nope'"),
        (["train", "--out", "x", "--set", "colour=red"], "unknown config field 'colour'"),
        (["train", "--preset", "tiny-cpu", "--out", "x", "--set", "g_dim"], "--set expects field=value"),
        (["train", "--preset", "tiny-cpu", "--out", "x", "--batch-size", "big"], "batch_size must be a int"),
        (["train", "--preset", "tiny-cpu", "--out", "x", "--g-dim", "31"], "g_dim 31 is not divisible"),
        (["train", "--out", "x", "--bogus", "1"], "unrecognized arguments: --bogus"),
        (["fly"], "invalid choice: 'fly'"),
        (["sample", "--ckpt", "missing.pt", "--out", "g.png"], "checkpoint missing.pt does not exist"),
    ],
)
def test_mistakes_exit_2_with_one_line(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert match in one_error_line(capsys)
    assert not (tmp_path / "x").exists(), "a bad command must not start any work"


def test_missing_data_exits_2(tmp_path, capsys):
    argv = ["train", *TINY_FLAGS, "--out", str(tmp_path / "run"), "--data", str(tmp_path / "nowhere")]
    assert main(argv) == 2
    assert "does not exist" in one_error_line(capsys)


def test_sample_writes_a_png(run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", "--ckpt", str(run / "ckpt_0000003.pt"), "--out", str(out), "--n", "5"]) == 0
    assert Image.open(out).size == (3 * 18 + 2, 2 * 18 + 2)  # 5 images in rows of 3, 16 px + 2 px padding
    assert "wrote 5 samples" in capsys.readouterr().out


def test_evaluate_prints_scores_or_the_reason(run, monkeypatch, capsys):
    ckpt = str(run / "ckpt_0000003.pt")

    def fake_scores(generator_fn, num_samples, reference, weights_path=None):
        images = generator_fn(2)
        assert images.shape == (2, 3, 16, 16) and images.abs().max() <= 1
        return {"fid": 12.345, "is_mean": 3.21, "is_std": 0.1}

    monkeypatch.setattr(fidelity_mod, "compute_fid_is", fake_scores)
    assert main(["evaluate", "--ckpt", ckpt, "--num-samples", "10"]) == 0
    assert "FID 12.35  IS 3.21 +- 0.10  (10 samples)" in capsys.readouterr().out

    def unavailable(*args, **kwargs):
        raise MetricsUnavailable("no Inception weights here")

    monkeypatch.setattr(fidelity_mod, "compute_fid_is", unavailable)
    assert main(["evaluate", "--ckpt", ckpt, "--num-samples", "10"]) == 1
    assert "FID / IS not computed: no Inception weights here" in capsys.readouterr().out


def test_parse_value():
    assert parse_value("lr_g", "1e-3") == 1e-3
    assert parse_value("steps", "2e3") == 2000 and isinstance(parse_value("steps", "2e3"), int)
    assert parse_value("g_demodulate", "true") is True and parse_value("g_demodulate", "0") is False
    assert parse_value("d_spectral_norm", "sn") == "sn"
    with pytest.raises(ConfigError, match="g_demodulate must be true or false"):
        parse_value("g_demodulate", "maybe")


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


# ---- the run folder: one run per folder, resume that does what it says (issue 15) ---------------------


def test_a_used_folder_is_not_overwritten_without_overwrite(run, image_folder, capsys):
    before = (run / "metrics.jsonl").read_text()
    argv = ["train", *TINY_FLAGS, "--out", str(run), "--data", str(image_folder), "--steps", "2"]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert (run / "metrics.jsonl").read_text() == before, "the old run is untouched"


def test_overwrite_starts_over(tmp_path, image_folder, capsys):
    out = tmp_path / "run"
    argv = ["train", *TINY_FLAGS, "--out", str(out), "--data", str(image_folder)]
    assert main([*argv, "--steps", "4"]) == 0
    assert main([*argv, "--steps", "2", "--overwrite"]) == 0
    assert [p.name for p in list_checkpoints(out)] == ["ckpt_0000002.pt"]
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2


def test_resume_where_there_is_no_run_is_refused_naming_nearby_runs(run, capsys):
    typo = run.parent / (run.name + "x")
    assert main(["train", "--out", str(typo), "--resume", "--device", "cpu"]) == 2
    line = one_error_line(capsys)
    assert f"no run to resume in {typo}" in line and str(run) in line
    assert not typo.exists(), "nothing was created"


def test_resume_beyond_steps_is_refused(run, capsys):
    assert main(["train", "--out", str(run), "--resume", "--steps", "1", "--device", "cpu"]) == 2
    assert "nothing to do; pass a larger --steps" in one_error_line(capsys)


def test_overrides_on_resume_are_applied_and_saved(tmp_path, image_folder, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--out", str(out), "--data", str(image_folder), "--steps", "2"]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--steps", "3", "--lr-d", "1e-5"]) == 0
    assert "lr_d 0.002 -> 1e-05" in capsys.readouterr().err
    state = load_checkpoint(out / "ckpt_0000003.pt")
    assert state["config"]["lr_d"] == 1e-5
    assert {g["lr"] for g in state["opt_d"]["param_groups"]} == {1e-5}, (
        "the optimizer runs what the config says"
    )


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--data", ""], "data is empty"),
        (["--set", "steps=2.5e0"], "steps must be a int, got '2.5e0'"),
        (["--set", "amp=fp17"], "amp must be one of"),
        (["--set", "g_patch_size=0"], "g_patch_size must be a positive integer"),
        (["--set", "image_size=0"], "image_size must be a positive integer"),
        (["--set", "beta2=1.0"], r"beta2 must be in \[0, 1\)"),
        (["--set", "beta1=-0.1"], r"beta1 must be in \[0, 1\)"),
        (["--resume", "--overwrite"], "pass one of them"),
    ],
)
def test_silent_wrong_values_are_refused(flags, match, tmp_path, capsys):
    assert main(["train", *TINY_FLAGS, "--out", str(tmp_path / "run"), *flags]) == 2
    assert re.search(match, one_error_line(capsys))
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["train", *TINY_FLAGS, "--out", str(file)]) == 2
    assert "is a file, not a folder" in one_error_line(capsys)


@pytest.mark.parametrize(
    "out, match",
    [
        ("", "is a folder: give the image file"),
        ("grid.xyz", "unknown image type .xyz"),
        ("grid", "(no suffix)"),
    ],
)
def test_sample_out_must_be_an_image_file(run, tmp_path, capsys, out, match):
    assert main(["sample", "--ckpt", str(run / "ckpt_0000003.pt"), "--out", str(tmp_path / out)]) == 2
    assert match in one_error_line(capsys)


def test_sample_from_a_run_folder_uses_its_newest_checkpoint(run, tmp_path, capsys):
    assert main(["sample", "--ckpt", str(run), "--out", str(tmp_path / "g.png"), "--n", "2"]) == 0
    assert "is a run folder; using its newest checkpoint, ckpt_" in capsys.readouterr().err


def test_evaluate_refuses_one_sample_and_names_the_flag_offline(run, capsys):
    assert main(["evaluate", "--ckpt", str(run), "--num-samples", "1"]) == 2
    assert "--num-samples must be at least 2" in one_error_line(capsys)
    assert (
        main(["evaluate", "--ckpt", str(run), "--num-samples", "10", "--inception-weights", "nope.pth"]) == 1
    )
    out = capsys.readouterr().out
    assert "--inception-weights" in out and "weights_path" not in out


def test_a_run_ends_with_what_it_left_and_prints_plain_progress_without_a_terminal(
    tmp_path, image_folder, capsys
):
    out = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--out", str(out), "--data", str(image_folder), "--steps", "2"]) == 0
    captured = capsys.readouterr()
    assert "loading the training images" in captured.err and "8 images loaded" in captured.err
    assert "step 2/2  d_loss" in captured.err, "a plain line per log interval when stderr is not a terminal"
    summary = captured.out
    assert f"newest checkpoint: {out / 'ckpt_0000002.pt'}" in summary
    assert "latest samples:    " + str(out / "samples" / "step_000002.png") in summary
    assert "FID:               skipped at step 2: fid_num_samples is 0" in summary


def test_no_preset_warns_what_it_costs(tmp_path, capsys):
    argv = ["train", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "none")]
    assert main(argv) == 2  # the data is missing; the note came first
    assert "no --preset, so paper-cifar10: 500,000 steps" in capsys.readouterr().err


def test_help_shows_defaults_presets_and_the_run_folder(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--lr-d FLOAT" in text and "default 0.002" in text and "--overwrite" in text
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "tiny-cpu" in text and "VITGAN_LITE_DATA" in text and "--resume" in text
