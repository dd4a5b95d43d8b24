"""The demo a fresh clone runs: the shipped sample clip and the shipped config plan the whole DAG on it (tracking
to metrics), and an empty data/raw/ is a clean no-op that says how to add videos. (The demo's real run, about a
quarter of an hour on 2 CPU cores, is measured by hand: README, "Quick start".)"""

from __future__ import annotations

import shutil

import pytest
from test_workflow import REPO, planned_jobs, snakemake

from neural_renderer.assets import sha256_file
from neural_renderer.video import probe_video

pytestmark = pytest.mark.slow

SAMPLE = REPO / "data" / "raw" / "sample.mp4"
SAMPLE_SHA256 = (
    "1dc94c1fec7ef7dc831c8a49f0e1788ae568812cb68e62f6875d9070f573d02a"  # LivePortrait assets/examples/driving/d18.mp4
)


def test_the_sample_clip_ships_with_its_licence_and_source():
    assert sha256_file(SAMPLE) == SAMPLE_SHA256
    info = probe_video(SAMPLE)
    assert (info.width, info.height, info.n_frames) == (480, 480, 216)
    notice = (REPO / "data" / "raw" / "SAMPLE_LICENSE.md").read_text()
    assert "MIT License" in notice and "LivePortrait" in notice and "d18.mp4" in notice


def demo_dir(tmp_path, with_sample: bool):
    """A copy of what a fresh clone has: the shipped config, data/raw/ with or without the sample."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    if with_sample:
        (raw / "sample.mp4").symlink_to(SAMPLE)
    return tmp_path


def test_the_shipped_config_plans_the_whole_demo_on_the_sample(tmp_path):
    jobs = planned_jobs(demo_dir(tmp_path, True))
    rules = {rule for rule, _ in jobs}
    per_video = {"ingest", "track", "crop", "fit", "gaze", "assemble", "qc", "train_renderer", "render"}
    assert {(r, "sample") for r in per_video} <= jobs
    assert {"download_face_landmarker", "build_ict_model", "correspondence", "metrics", "metrics_summary"} <= rules


def test_an_empty_raw_dir_runs_nothing_and_says_how_to_add_videos(tmp_path):
    workdir = demo_dir(tmp_path, False)
    proc = snakemake(workdir, "--cores", "1")
    assert proc.returncode == 0
    message = [line for line in proc.stderr.splitlines() if "no videos in data/raw/" in line]
    assert len(message) == 1 and "copy portrait videos there" in message[0], proc.stderr[-2000:]
    assert not (workdir / "results").exists()
