"""End to end: real Snakemake runs on real videos at tiny size, incremental rebuilds, bad input with --keep-going.

One workflow directory is shared by the tests of this module (module-scoped fixture) because the first full run is
the expensive part; the dry-run tests after it only ask Snakemake what it would do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from neural_renderer.video import resolve_ffmpeg

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STAGE_RULES = {"ingest", "track", "crop", "fit", "gaze", "assemble", "qc"}


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> set[tuple[str, str]]:
    """(rule, video) pairs that a dry run would execute."""
    proc = snakemake(workdir, "--dry-run", *args)
    text = proc.stdout + proc.stderr
    if re.search(r"Nothing to be done", text):
        return set()
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m or m.group(1) == "all":
            continue
        w = re.search(r"wildcards: video=([^\s,]+)", block)
        jobs.add((m.group(1), w.group(1) if w else ""))
    return jobs


def write_config(workdir: Path, shared: Path, **sections) -> None:
    config = {
        "raw_dir": "data/raw",
        "results_dir": "results",
        "models": {
            "face_landmarker": str(shared / "models" / "face_landmarker.task"),
            "morphable_model": str(shared / "models" / "ict_face_light_face.npz"),
        },
        "crop": {"resolution": 256},
        "fit": {"device": "cpu"},
        "qc": {"n_frames": 4},
        **sections,
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def cut_clip(src: Path, dst: Path, frames: int) -> None:
    subprocess.run(
        [resolve_ffmpeg(), "-v", "error", "-y", "-i", str(src), "-frames:v", str(frames), "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(dst)],
        check=True,
    )


@pytest.fixture(scope="module")
def workflow(tmp_path_factory, request, shared_dir):
    shared = shared_dir
    videos = shared / "testdata" / "videos"
    workdir = tmp_path_factory.mktemp("wf")
    raw = workdir / "data" / "raw"
    raw.mkdir(parents=True)
    os.symlink(videos / "d0.mp4", raw / "d0.mp4")  # 78 frames, 512x512
    cut_clip(videos / "d18.mp4", raw / "d18.mp4", 40)
    (raw / "broken.mp4").write_text("this is not a video\n")  # must fail alone
    (raw / "notes.txt").write_text("ignored: not a video extension\n")
    write_config(workdir, shared)
    first = snakemake(workdir, "--keep-going", check=False)
    return workdir, shared, first


def test_full_run_builds_every_good_video_and_fails_only_the_bad_one(workflow):
    workdir, _, first = workflow
    assert first.returncode != 0, "the broken video must make the run fail"
    log = first.stdout + first.stderr
    assert "broken" in log
    broken_log = (workdir / "logs" / "broken" / "ingest.log").read_text()
    assert re.search(r"broken\.mp4: .*(invalid|not a video|no video|could not|cannot)", broken_log, re.I), broken_log
    assert not (workdir / "results" / "broken" / "track.h5").exists()
    assert not list((workdir / "results").rglob(".*.tmp-*")), "temporary files left behind"
    for video, n in (("d0", 78), ("d18", 40)):
        path = workdir / "results" / video / "tracking.h5"
        assert path.is_file(), f"{video}: tracking.h5 missing\n{log[-3000:]}"
        with h5py.File(path) as f:
            assert f["frames"].shape == (n, 256, 256, 3)
            assert f["frames"].chunks == (1, 256, 256, 3)
            assert f["track/valid"][()].mean() > 0.9
            assert f["fit/expression"].shape[0] == n
            assert np.isfinite(f["gaze/pitch_yaw_deg"][()]).all()
            assert f.attrs["source_sha256"] and f["crop"].attrs["resolution"] == 256
            # the frames are real crops: not black, and differ over time
            assert f["frames"][0].mean() > 20 and np.abs(f["frames"][0].astype(int) - f["frames"][n - 1]).mean() > 1
        stats = json.loads((workdir / "results" / video / "qc" / "stats.json").read_text())
        assert stats["n_frames"] == n and stats["detection_rate"] > 0.9
        assert stats["reprojection_error_px"]["mean"] < 2.5 * 256 / 512 * 2  # generous at 256 px
        assert (workdir / "results" / video / "qc" / "contact_sheet.png").stat().st_size > 10_000
        assert (workdir / "logs" / video / "track.benchmark.tsv").is_file()


def test_nothing_to_do_after_a_complete_run(workflow):
    workdir, _, _ = workflow
    (workdir / "data" / "raw" / "broken.mp4").unlink()
    assert planned_jobs(workdir) == set()


def test_new_video_runs_only_its_own_jobs(workflow):
    workdir, _, _ = workflow
    new = workdir / "data" / "raw" / "new_clip.mp4"
    shutil.copy(workdir / "data" / "raw" / "d18.mp4", new)
    try:
        jobs = planned_jobs(workdir)
    finally:
        new.unlink()
    assert {rule for rule, _ in jobs} == STAGE_RULES
    assert {video for _, video in jobs} == {"new_clip"}


def test_changing_crop_reruns_crop_and_dependants_not_tracking(workflow):
    workdir, shared, _ = workflow
    write_config(workdir, shared, crop={"resolution": 512})
    try:
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, shared)
    assert {rule for rule, _ in jobs} == {"crop", "fit", "gaze", "assemble", "qc"}
    assert {video for _, video in jobs} == {"d0", "d18"}


def test_changing_fit_reruns_fit_and_dependants_only(workflow):
    workdir, shared, _ = workflow
    write_config(workdir, shared, fit={"device": "cpu", "w_expression_prior": 0.7})
    try:
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, shared)
    assert {rule for rule, _ in jobs} == {"fit", "gaze", "assemble", "qc"}


def test_override_for_one_video_reruns_only_that_video(workflow):
    workdir, shared, _ = workflow
    write_config(workdir, shared, overrides={"d18": {"qc": {"n_frames": 2}}})
    try:
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, shared)
    assert jobs == {("qc", "d18")}


def test_invalid_config_fails_before_any_job(workflow):
    workdir, shared, _ = workflow
    write_config(workdir, shared, crop={"resolution": 300})
    try:
        proc = snakemake(workdir, "--dry-run", check=False)
    finally:
        write_config(workdir, shared)
    assert proc.returncode != 0
    assert "300 is not one of [256, 512, 1024]" in proc.stdout + proc.stderr


def test_video_without_face_fails_with_clear_message(tmp_path, shared_dir):
    """A real, decodable video with no face in it: the job fails naming the video; nothing partial is left."""
    shared = shared_dir
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    subprocess.run(
        [resolve_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=256x256:rate=25:duration=1",
         "-pix_fmt", "yuv420p", str(raw / "noface.mp4")],
        check=True,
    )
    write_config(tmp_path, shared)
    proc = snakemake(tmp_path, "results/noface/track.h5", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "logs" / "noface" / "track.log").read_text()
    assert "noface.mp4: no face detected in any of its 25 frames" in log
    assert not (tmp_path / "results" / "noface" / "track.h5").exists()
    assert (tmp_path / "results" / "noface" / "ingest" / "probe.json").exists()  # earlier stage output kept


def test_report_shows_qc_outputs(workflow):
    workdir, _, _ = workflow
    snakemake(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text(errors="replace")
    assert "contact_sheet.png" in html and "stats.json" in html and "Tracking QC" in html
