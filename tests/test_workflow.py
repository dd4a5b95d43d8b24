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

import cv2
import h5py
import numpy as np
import pytest
import yaml

from neural_renderer.video import resolve_ffmpeg

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STAGE_RULES = {"ingest", "track", "crop", "fit", "gaze", "assemble", "qc"}


def snakemake(workdir: Path, *args: str, check: bool = True, repo: Path = REPO) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--cores", "2", *args]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(workdir: Path, *args: str, repo: Path = REPO) -> set[tuple[str, str]]:
    """(rule, video) pairs that a dry run would execute (with the workflow and package of `repo`)."""
    proc = snakemake(workdir, "--dry-run", *args, repo=repo)
    text = proc.stdout + proc.stderr
    if re.search(r"Nothing to be done", text):
        return set()
    jobs = set()
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", text):  # group jobs print their rules indented
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m or m.group(1) == "all":
            continue
        w = re.search(r"wildcards: video=([^\s,]+)", block)
        jobs.add((m.group(1), w.group(1) if w else ""))
    return jobs


def profile_dir(name: str = "slurm") -> Path:
    """A profile shipped in profiles/ (the SLURM one by default: what a cluster run plans and submits)."""
    path = REPO / "profiles" / name
    assert path.is_dir(), f"no profile {name!r} in {REPO / 'profiles'}"
    return path


def dry_run_jobs(workdir: Path, *args: str, profile: str = "slurm") -> list[dict]:
    """The jobs Snakemake plans with a profile (`--dry-run`), as it prints them: rule, wildcards, threads, resources,
    log, output and benchmark per job (group jobs included). --cores 64 so that no thread count is clamped to the
    cores of this machine (a cluster job's is not)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--profile", str(profile_dir(profile))]
    cmd += ["--dry-run", "--cores", "64", *args]
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600
    )
    assert proc.returncode == 0, f"snakemake --dry-run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    jobs = []
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", proc.stdout + proc.stderr):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m or m.group(1) == "all":
            continue
        fields = dict(re.findall(r"^\s+(\w+): (.*)$", block, re.M))
        resources = {}
        for item in fields.get("resources", "").split(", "):
            key, _, value = item.partition("=")
            if key:
                resources[key] = int(value) if value.isdigit() else value
        jobs.append(
            {
                "rule": m.group(1),
                "wildcards": fields.get("wildcards", ""),
                "threads": int(fields.get("threads", 1)),
                "resources": resources,
                "log": fields.get("log", "").split(", ") if fields.get("log") else [],
                "output": fields.get("output", "").split(", ") if fields.get("output") else [],
                "benchmark": fields.get("benchmark"),
            }
        )
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
        # the damaged video keeps the frames before its damage; damaged_strict (the same file) must fail
        "overrides": {"damaged": {"ingest": {"allow_partial": True}}, **sections.get("overrides", {})},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def cut_clip(src: Path, dst: Path, frames: int) -> None:
    subprocess.run(
        [
            resolve_ffmpeg(),
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-frames:v",
            str(frames),
            "-an",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(dst),
        ],
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
    shutil.copy(raw / "d18.mp4", raw / "my clip.mp4")  # a name the wildcard cannot take: skipped, the rest runs
    cut_clip(videos / "d18.mp4", workdir / "clip.mp4", 60)
    data = bytearray((workdir / "clip.mp4").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 20000] = bytes(20000)  # 20 KB of zeros mid-stream
    (raw / "damaged.mp4").write_bytes(bytes(data))
    (raw / "damaged_strict.mp4").write_bytes(bytes(data))
    stale = kill_during_write(workdir / "results" / "d0" / "tracking.h5")  # a killed job's temporary file
    write_config(workdir, shared)
    # threads=1 for track and fit (the machine has 2 cores): their logs must show pools of 1, not of 2
    first = snakemake(workdir, "--keep-going", "--set-threads", "track=1", "fit=1", check=False)
    return workdir, shared, first, stale


def kill_during_write(path: Path) -> Path:
    """Run a writer that is killed with SIGKILL inside `atomic_path`; return the temporary file it leaves."""
    code = (
        "import os, signal, sys\nfrom neural_renderer.atomic import atomic_path\n"
        "cm = atomic_path(sys.argv[1]); tmp = cm.__enter__(); tmp.write_bytes(b'x' * 4096)\n"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    (left,) = path.parent.glob(f".{path.name}.tmp-*")
    return left


def test_full_run_builds_every_good_video_and_fails_only_the_bad_one(workflow):
    workdir, _, first, _ = workflow
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
            fps = 25.0 if video == "d0" else 30.0
            np.testing.assert_allclose(f["timestamps_s"][()], np.arange(n) / fps, atol=1e-9)
            np.testing.assert_array_equal(f["track/timestamps_s"][()], f["timestamps_s"][()])
            assert f["track"].attrs["timeline"] == "source" and f["track"].attrs["damage"] == ""
        stats = json.loads((workdir / "results" / video / "qc" / "stats.json").read_text())
        assert stats["n_frames"] == n and stats["detection_rate"] > 0.9
        assert stats["partial"] is False and stats["timeline"] == "source" and stats["n_faces_max"] == 1
        assert stats["reprojection_error_px"]["mean"] < 2.5 * 256 / 512 * 2  # generous at 256 px
        sheet = cv2.imread(str(workdir / "results" / video / "qc" / "contact_sheet.png"))
        assert sheet is not None and min(sheet.shape[:2]) >= 256 and sheet.std() > 10  # frames drawn, not blank
        assert (workdir / "logs" / video / "track.benchmark.tsv").is_file()


def test_bad_name_is_skipped_with_a_warning_and_the_others_run(workflow):
    workdir, _, first, _ = workflow
    raw = workdir / "data" / "raw"
    assert (
        f"portrait pipeline: WARNING: {Path('data/raw') / 'my clip.mp4'}: skipped: video name 'my clip' is not "
        "allowed; "
        "names must match [A-Za-z0-9][A-Za-z0-9_-]*" in first.stderr
    ), first.stderr[-3000:]
    assert "Rename it (e.g. to my_clip.mp4) to include it" in first.stderr
    assert sorted(p.name for p in (workdir / "results").iterdir() if p.is_dir() and "clip" in p.name) == []
    assert (raw / "my clip.mp4").is_file()  # never renamed or touched


def test_killed_jobs_temporary_file_is_swept_and_not_taken_for_output(workflow):
    workdir, _, first, stale = workflow
    assert not stale.exists()
    assert f"removed the stale temporary file {Path('results') / 'd0' / stale.name}" in first.stderr
    with h5py.File(workdir / "results" / "d0" / "tracking.h5") as f:  # the real output was built, not the stub
        assert f["frames"].shape[0] == 78


def test_jobs_size_their_thread_pools_from_snakemake_threads(workflow):
    workdir, _, _, _ = workflow
    fit_log = (workdir / "logs" / "d0" / "fit.log").read_text()
    track_log = (workdir / "logs" / "d0" / "track.log").read_text()
    crop_log = (workdir / "logs" / "d0" / "crop.log").read_text()
    assert re.search(r"stage fit threads: rule=1 job=1 torch=1 cv2=(1|None) blas=1\b", fit_log), fit_log
    assert re.search(r"stage track threads: rule=1 job=1 torch=(1|None) cv2=1 blas=1\b", track_log), track_log
    assert re.search(r"stage crop threads: rule=1 job=1 ", crop_log), crop_log


def test_mid_stream_damage_fails_in_one_line_or_keeps_the_frames_before_it(workflow):
    workdir, _, _, _ = workflow
    strict = (workdir / "logs" / "damaged_strict" / "ingest.log").read_text()
    (line,) = [x for x in strict.splitlines() if "failed on bad input" in x]
    assert re.search(r"damaged_strict\.mp4: the video stream is damaged at \d+\.\d{3} s \(frame (\d+)\)", line), line
    assert "set ingest.allow_partial: true to keep the" in line
    assert not (workdir / "results" / "damaged_strict" / "ingest" / "probe.json").exists()
    keep = int(re.search(r"\(frame (\d+)\)", line).group(1))
    assert 0 < keep < 60
    stats = json.loads((workdir / "results" / "damaged" / "qc" / "stats.json").read_text())
    assert stats["partial"] is True and stats["n_frames"] == keep
    assert stats["damage"].startswith(f"the video stream is damaged at {keep / 30:.3f} s (frame {keep})")
    with h5py.File(workdir / "results" / "damaged" / "tracking.h5") as f:
        assert f["frames"].shape[0] == keep
        np.testing.assert_allclose(f["timestamps_s"][()], np.arange(keep) / 30.0, atol=1e-9)


def test_nothing_to_do_after_a_complete_run(workflow):
    workdir, _, _, _ = workflow
    (workdir / "data" / "raw" / "broken.mp4").unlink()
    (workdir / "data" / "raw" / "damaged_strict.mp4").unlink()
    assert planned_jobs(workdir) == set()


def test_new_video_runs_only_its_own_jobs(workflow):
    workdir, _, _, _ = workflow
    new = workdir / "data" / "raw" / "new_clip.mp4"
    shutil.copy(workdir / "data" / "raw" / "d18.mp4", new)
    try:
        jobs = planned_jobs(workdir)
    finally:
        new.unlink()
    assert {rule for rule, _ in jobs} == STAGE_RULES
    assert {video for _, video in jobs} == {"new_clip"}


def params_changed(workdir: Path) -> set[str]:
    """Output files whose rule's params differ from those recorded when they were made, as Snakemake's `--summary`
    reports them (its `--list-params-changes` lists every file with recorded params in Snakemake 9.27: a no-change
    ParamsChange still iterates over its files)."""
    rows = [line.split("\t") for line in snakemake(workdir, "--summary").stdout.splitlines()]
    header = rows[0]
    assert header[:1] == ["output_file"] and "status" in header, rows[:2]
    return {row[0] for row in rows[1:] if len(row) == len(header) and row[header.index("status")] == "params changed"}


def test_changing_crop_reruns_crop_and_dependants_not_tracking(workflow):
    workdir, shared, _, _ = workflow
    assert params_changed(workdir) == set()
    write_config(workdir, shared, crop={"resolution": 512})
    try:
        jobs = planned_jobs(workdir)
        changed = params_changed(workdir)
    finally:
        write_config(workdir, shared)
    assert {rule for rule, _ in jobs} == {"crop", "fit", "gaze", "assemble", "qc"}
    assert {video for _, video in jobs} == {"d0", "d18", "damaged"}
    # what Snakemake itself says changed: the params of crop alone (a rule's params carry only the keys it uses), so
    # fit and later rerun because their input changes, not because crop's key is in their params
    assert changed == {f"results/{v}/crop.h5" for v in ("d0", "d18", "damaged")}


def test_changing_fit_reruns_fit_and_dependants_only(workflow):
    workdir, shared, _, _ = workflow
    write_config(workdir, shared, fit={"device": "cpu", "w_expression_prior": 0.7})
    try:
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, shared)
    assert {rule for rule, _ in jobs} == {"fit", "gaze", "assemble", "qc"}


def test_override_for_one_video_reruns_only_that_video(workflow):
    workdir, shared, _, _ = workflow
    write_config(workdir, shared, overrides={"d18": {"qc": {"n_frames": 2}}})
    try:
        jobs = planned_jobs(workdir)
    finally:
        write_config(workdir, shared)
    assert jobs == {("qc", "d18")}


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """The workflow and package copied (file times kept: Snakemake reruns a rule whose script is newer than its
    outputs), so a test can edit the code and ask a dry run what that reruns."""
    copy = tmp_path_factory.mktemp("repo")
    for part in ("Snakefile", "config.schema.yaml", "rules", "neural_renderer", "workflow_scripts", "envs", "report"):
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / part, copy / part)
    return copy


def planned_after_edit(workdir: Path, repo: Path, path: Path, edit) -> set[tuple[str, str]]:
    """The dry run's jobs with the file at `path` (inside `repo`) edited by `edit(text)`, then restored."""
    text = path.read_text()
    path.write_text(edit(text))
    try:
        return planned_jobs(workdir, repo=repo)
    finally:
        path.write_text(text)


def test_docstring_or_comment_edit_reruns_nothing(workflow, repo_copy):
    workdir, _, _, _ = workflow
    config_py = repo_copy / "neural_renderer" / "config.py"
    assert config_py.read_text().startswith('"""Workflow configuration')

    def reworded(text):
        return text.replace('"""Workflow configuration', '"""Configuration of the workflow', 1) + "\n# a comment\n"

    assert planned_after_edit(workdir, repo_copy, config_py, reworded) == set()


def test_logic_edit_reruns_the_stages_that_import_it(workflow, repo_copy):
    workdir, _, _, _ = workflow
    package = repo_copy / "neural_renderer"

    def logic(text):
        return text + "\n_EDITED = 1\n"

    # config.py is imported by ingest, crop, gaze, qc, ... (the hand-kept table listed none of them)
    jobs = planned_after_edit(workdir, repo_copy, package / "config.py", logic)
    assert ("crop", "d0") in jobs and {rule for rule, _ in jobs} == STAGE_RULES
    # crop's smoothing: crop and what reads its output rerun, tracking does not
    jobs = planned_after_edit(workdir, repo_copy, package / "crop" / "smoothing.py", logic)
    assert {rule for rule, _ in jobs} == {"crop", "fit", "gaze", "assemble", "qc"}
    assert {video for _, video in jobs} == {"d0", "d18", "damaged"}


def test_invalid_config_fails_before_any_job(workflow):
    workdir, shared, _, _ = workflow
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
        [
            resolve_ffmpeg(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=256x256:rate=25:duration=1",
            "-pix_fmt",
            "yuv420p",
            str(raw / "noface.mp4"),
        ],
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
    workdir, _, _, _ = workflow
    snakemake(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text(errors="replace")
    assert "contact_sheet.png" in html and "stats.json" in html and "Tracking QC" in html
