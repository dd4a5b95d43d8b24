"""The renderer rules in a real Snakemake run: a 40-frame clip at 256 px through the whole DAG with a tiny renderer
(train_renderer + render), resume-friendly layout (checkpoints not declared), per-video overrides rerun only it."""

from __future__ import annotations

import json
import os

import cv2
import h5py
import numpy as np
import pytest
from test_workflow import REPO, cut_clip, dry_run_jobs, planned_jobs, snakemake, write_config

from neural_renderer.video import iter_frames, probe_video

pytestmark = pytest.mark.slow

TINY = {
    "enabled": True,
    "preset": "seed",  # the paper's architecture at a tiny size (the preview preset would train at 128 px)
    "model": {
        "width": 16,
        "feature_dim": 4,
        "pixel_freqs": 3,
        "pose_freqs": 2,
        "gaze_freqs": 2,
        "latent_dim": 4,
        "decoder_channels": 8,
        "decoder_res_blocks": 1,
    },
    "train": {
        "iterations": 4,
        "batch_size": 2,
        "checkpoint_every": 2,
        "disc_channels": 4,
        "disc_layers": 2,
        "disc_scales": 1,
        "device": "cpu",
        "train_frames": 30,
        "test_frames": 6,
        "min_train_frames": 8,
        "log_every": 1,
        "sample_every": 0,
        "w_perceptual": 0.0,
    },
    "render": {"device": "cpu"},
}


@pytest.fixture(scope="module")
def renderer_workflow(tmp_path_factory, shared_dir):
    workdir = tmp_path_factory.mktemp("wf_renderer")
    raw = workdir / "data" / "raw"
    raw.mkdir(parents=True)
    cut_clip(shared_dir / "testdata" / "videos" / "d0.mp4", raw / "d0.mp4", 40)
    write_config(workdir, shared_dir, renderer=TINY)
    proc = snakemake(workdir)
    return workdir, shared_dir, proc


def _small(frames: np.ndarray) -> np.ndarray:
    """(T, 32, 32, 3) float: area-averaged thumbnails."""
    return np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in frames]).astype(float)


def test_renderer_rules_train_and_render_every_video(renderer_workflow):
    workdir, _, _ = renderer_workflow
    out = workdir / "results" / "d0" / "renderer"
    assert (out / "model.pt").is_file()
    assert (out / "checkpoints" / "last.pt").is_file()  # kept between runs (not an output: never deleted by Snakemake)
    assert len((out / "losses.jsonl").read_text().splitlines()) == 4
    with h5py.File(out / "test_render.h5") as f:
        assert f["frames"].shape == (6, 256, 256, 3) and list(f["frame_index"][()]) == list(range(34, 40))
        rendered = f["frames"][()]
    # the mp4s hold those frames (lossy: crf 18), the side-by-side the render on the right
    for name, width in (("test_render.mp4", 256), ("test_side_by_side.mp4", 512)):
        info = probe_video(out / name)
        decoded = np.stack(list(iter_frames(out / name, info)))
        assert decoded.shape == (6, 256, width, 3) and not info.has_audio, (name, decoded.shape)
        # compared at 32 px: x264 (crf 18) keeps the content, not the tiny renderer's pixel noise (measured: 1.4 of 255;
        # at full size 15). This tiny model draws nearly the same image for every frame, so frame order is not checked.
        diff = np.abs(_small(decoded[:, :, -256:]) - _small(rendered)).mean()
        assert diff < 4, (name, diff)
    assert "train_renderer" in (workdir / "logs" / "d0" / "train_renderer.log").read_text()
    probe = json.loads((workdir / "results" / "d0" / "ingest" / "probe.json").read_text())
    assert probe["has_audio"] is False  # the clip is cut with -an
    assert not list((workdir / "results").rglob(".*.tmp-*"))


def test_renderer_override_reruns_only_the_renderer_of_that_video(renderer_workflow):
    workdir, shared, _ = renderer_workflow
    assert planned_jobs(workdir) == set()
    write_config(workdir, shared, renderer=TINY, overrides={"d0": {"renderer": {"train": {"iterations": 6}}}})
    try:
        assert planned_jobs(workdir) == {("train_renderer", "d0"), ("render", "d0")}
    finally:
        write_config(workdir, shared, renderer=TINY)


def test_slurm_plan_gives_the_renderer_rules_a_gpu_threads_memory_time_and_logs(renderer_workflow):
    """What Snakemake plans with profiles/slurm (its dry run), not the text of renderer.smk. The retry with more time
    is run for real in tests/test_slurm.py (train_renderer cancelled and resumed)."""
    workdir, _, _ = renderer_workflow
    jobs = {job["rule"]: job for job in dry_run_jobs(workdir, "--forcerun", "train_renderer")}
    assert set(jobs) == {"train_renderer", "render"}, jobs
    train, render = jobs["train_renderer"], jobs["render"]
    assert train["threads"] == 4 and render["threads"] == 2
    assert {k: train["resources"][k] for k in ("gpu", "mem_mb", "runtime")} == {
        "gpu": 1,
        "mem_mb": 32000,
        "runtime": 720,
    }
    assert {k: render["resources"][k] for k in ("gpu", "mem_mb", "runtime")} == {
        "gpu": 1,
        "mem_mb": 16000,
        "runtime": 60,
    }
    assert train["log"] == ["logs/d0/train_renderer.log"] and render["log"] == ["logs/d0/render.log"]
    assert train["benchmark"] == "logs/d0/train_renderer.benchmark.tsv"
    # checkpoints are not outputs: Snakemake never deletes them before a retry, so the retry can resume
    assert train["output"] and not [o for o in train["output"] if "checkpoints" in o]
    assert os.path.isfile(REPO / "envs" / "renderer.yaml")
