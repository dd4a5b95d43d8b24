"""The workflow on a real SLURM cluster through profiles/slurm (snakemake-executor-plugin-slurm).

Eight videos end to end (two, and six of a few frames each): each video's preprocessing (ingest -> qc,
`group: "preprocess"`) is one SLURM job, so the whole run is 9 sbatch calls (the shared correspondence + one per
video) instead of 57; every job goes through sbatch (Snakemake's submissions, the controller's job list and each
job's own log agree), the two videos' outputs equal a local run's (where groups are inactive). Then d0's stages from
track on are forced again: a cancelled group job is retried with more runtime and memory (its time limit is the sum
of its stages', its memory their largest), a run whose Snakemake and running job are killed resumes with
--rerun-incomplete without redoing finished stages, a second run submits nothing, and a GPU rule gets a GPU.

Needs a reachable SLURM controller (`sinfo` works) whose nodes see this machine's temporary directory (pytest's
--basetemp can point elsewhere): `bash .ci/slurm_setup.sh` starts a single-node cluster on localhost. Skipped
without one, unless PORTRAIT_REQUIRE_SLURM=1 (set by .ci/run, which starts the cluster): then it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from test_model_downloads import ict_archive
from test_profiles import write_probe_workflow
from test_renderer_workflow import TINY
from test_workflow import cut_clip, write_config

from neural_renderer.assets import ASSETS, MIRROR_ENV
from neural_renderer.resources import VideoSize, mem_mb, runtime_min
from neural_renderer.stages import train_renderer

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[1]
PIPELINE_RULES = {"ingest", "correspondence", "track", "crop", "fit", "gaze", "assemble", "qc"}
GROUPED = PIPELINE_RULES - {"correspondence"}  # group "preprocess": one SLURM job per video
# the local reference run has two videos; the SLURM run six more, a few frames each (dataset-like batches: the count of
# sbatch calls is what they check, one per video, not 7 per video)
LOCAL_VIDEOS = ("d0", "d18")
EXTRA_VIDEOS = {f"{src}_{n}": (src, n) for src in ("d6", "d12", "d18") for n in (6, 9)}
VIDEOS = LOCAL_VIDEOS + tuple(EXTRA_VIDEOS)
# Settings for this test cluster, not for users: it has no accounting database (sacct cannot answer, so job states
# come from squeue) and its jobs are short (first status check after 2 s, not 40). Successful jobs' logs are kept
# so that the test can read them.
CLUSTER_ARGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
)
FIT_DERIVED = ("fit", "gaze", "qc")  # iterative float maths: compared with a tolerance, the rest bit for bit


def find_partition() -> tuple[str | None, str]:
    """(partition to use, '') or (None, why there is no cluster)."""
    missing = [c for c in ("sinfo", "sbatch", "squeue", "scancel") if not shutil.which(c)]
    if missing:
        return None, f"SLURM client commands missing: {', '.join(missing)}"
    try:  # sinfo retries for up to a minute without a slurm.conf
        proc = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None, "no SLURM controller reachable (sinfo did not answer within 20 s)"
    if proc.returncode != 0:
        return None, f"no SLURM controller reachable (sinfo: {proc.stderr.strip() or proc.returncode})"
    up = [p for p, state in (line.split() for line in proc.stdout.splitlines() if line.strip()) if state == "up"]
    if not up:
        return None, "the SLURM controller has no partition that is up"
    default = next((p for p in up if p.endswith("*")), up[0]).rstrip("*")
    return os.environ.get("PORTRAIT_SLURM_PARTITION") or default, ""


@pytest.fixture(scope="module")
def partition() -> str:
    name, reason = find_partition()
    if name is None:
        reason += "; start a single-node cluster with `bash .ci/slurm_setup.sh` (as root)"
        if os.environ.get("PORTRAIT_REQUIRE_SLURM") == "1":
            pytest.fail(f"PORTRAIT_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    return name


def snakemake_cmd(*args: str, profile: str | None = "slurm", snakefile: Path = REPO / "Snakefile") -> list[str]:
    """`profile` None: a plain run (Snakemake loads profiles/default by itself)."""
    chosen = ["--profile", str(REPO / "profiles" / profile)] if profile else []
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile), *chosen, *args]


def run_env(partition: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PORTRAIT_SLURM_PARTITION": partition}


def make_workdir(tmp_path_factory, shared: Path, name: str, extra: bool = False) -> Path:
    workdir = tmp_path_factory.mktemp(name)
    raw = workdir / "data" / "raw"
    raw.mkdir(parents=True)
    os.symlink(shared / "testdata" / "videos" / "d0.mp4", raw / "d0.mp4")  # 78 frames
    cut_clip(shared / "testdata" / "videos" / "d18.mp4", raw / "d18.mp4", 30)
    for video, (src, frames) in EXTRA_VIDEOS.items() if extra else ():
        cut_clip(shared / "testdata" / "videos" / f"{src}.mp4", raw / f"{video}.mp4", frames)
    write_config(workdir, shared)
    return workdir


def run(workdir: Path, cmd: list[str], env: dict[str, str], name: str) -> str:
    """Runs to the end, which must be a success; returns stdout + stderr (also kept in workdir/name.log)."""
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=900)
    text = proc.stdout + proc.stderr
    (workdir / f"{name}.log").write_text(text)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[3:])} failed ({proc.returncode}):\n{text[-6000:]}")
    return text


def squeue(*args: str) -> list[dict[str, str]]:
    """Jobs the controller knows (finished ones too, for MinJobAge): id, state, comment (rule_<rule>_...), time limit,
    memory request (e.g. "1100M")."""
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%i|%T|%k|%l|%m", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    fields = ("id", "state", "comment", "time_limit", "min_memory")
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]


def megabytes(text: str) -> int:
    """squeue's memory column ("1100M", "2G") in MB."""
    m = re.fullmatch(r"([\d.]+)([KMGT]?)", text.strip())
    assert m, text
    return round(float(m.group(1)) * {"K": 1 / 1024, "M": 1, "": 1, "G": 1024, "T": 1024**2}[m.group(2)])


RUN_ID = re.compile(r"SLURM run ID: (\S+)")  # also the name of each of the run's SLURM jobs


def run_id(text: str) -> str:
    m = RUN_ID.search(text)
    assert m, f"no SLURM run ID in the output:\n{text[-3000:]}"
    return m.group(1)


def submissions(text: str) -> dict[str, list[str]]:
    """Snakemake job id (a number, or a group job's uuid) -> its SLURM job ids (one per attempt), from its output."""
    out: dict[str, list[str]] = {}
    for jobid, slurm_id in re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", text):
        out.setdefault(jobid, []).append(slurm_id)
    return out


def finished(text: str) -> dict[str, str]:
    """Snakemake job id -> rule of every job that finished (the target rule `all` runs in Snakemake itself)."""
    return {jobid: rule for jobid, rule in re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", text) if rule != "all"}


def slurm_log(workdir: Path, slurm_id: str) -> Path:
    (path,) = (workdir / ".snakemake" / "slurm_logs").rglob(f"{slurm_id}.log")
    return path


def rules_run_in(workdir: Path, slurm_id: str) -> list[str]:
    """The rules that finished inside a SLURM job, from its own log (a group job runs several; each is reported
    twice, by the job step that ran it and by the job's Snakemake)."""
    return sorted(set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", slurm_log(workdir, slurm_id).read_text())))


def assert_all_jobs_went_through_sbatch(workdir: Path, text: str) -> dict[str, list[str]]:
    """Every job Snakemake ran finished inside a completed SLURM job of this run; returns
    kind of SLURM job (rule_<rule>, or rule_preprocess for a group job) -> ids of its completed SLURM jobs."""
    done, submitted = finished(text), submissions(text)
    assert done, f"no job finished:\n{text[-3000:]}"
    assert re.findall(r"^localrule (\w+):", text, re.M) in ([], ["all"]), "a job ran outside SLURM"
    jobs = {job["id"]: job for job in squeue("--name", run_id(text))}  # the controller's view of this run
    assert set(jobs) == {i for ids in submitted.values() for i in ids}, (jobs, submitted)
    completed = [
        submitted_ids[-1] for submitted_ids in submitted.values() if jobs[submitted_ids[-1]]["state"] == "COMPLETED"
    ]
    ran: list[str] = []
    by_name: dict[str, list[str]] = {}
    for slurm_id in completed:
        rules = rules_run_in(workdir, slurm_id)
        comment = jobs[slurm_id]["comment"]  # a group job's: rule_preprocess_<its rules, shortened>
        name = "rule_preprocess" if comment.startswith("rule_preprocess_") else comment.split("_wildcards_")[0]
        assert name == (f"rule_{rules[0]}" if len(rules) == 1 and rules[0] not in GROUPED else "rule_preprocess"), (
            name,
            rules,
        )
        by_name.setdefault(name, []).append(slurm_id)
        ran += rules
    assert sorted(ran) == sorted(done.values()), (
        f"finished jobs {sorted(done.values())} vs run in SLURM jobs {sorted(ran)}"
    )
    return by_name


def wait_for_running_track(workdir: Path, proc: subprocess.Popen, log: Path, skip: set[str]) -> dict[str, str]:
    """The first preprocess group job (not in `skip`) that SLURM runs and in which track has started."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before track ran:\n{log.read_text()[-4000:]}")
        m = RUN_ID.search(log.read_text())
        for job in squeue("--name", m.group(1)) if m else []:
            if job["comment"].startswith("rule_preprocess") and job["state"] == "RUNNING" and job["id"] not in skip:
                logs = list((workdir / ".snakemake" / "slurm_logs").rglob(f"{job['id']}.log"))
                if logs and "rule track:" in logs[0].read_text():
                    return job
        time.sleep(0.2)
    raise AssertionError(f"no track job ran within 240 s:\n{log.read_text()[-4000:]}")


def interrupted_run(workdir: Path, env: dict[str, str]) -> dict:
    """Forces d0's stages from track on again (78 frames: track runs long enough to be caught); cancels its group
    job once track runs in it (Snakemake retries the group with more runtime); then kills Snakemake and the retry
    while that runs, like a lost login session and a dead node."""
    log = workdir / "interrupted.log"
    targets = ("results/d0/tracking.h5", "results/d0/qc/stats.json")
    cmd = snakemake_cmd(*targets, "--forcerun", "track", *CLUSTER_ARGS)
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        first = wait_for_running_track(workdir, proc, log, skip=set())
        subprocess.run(["scancel", first["id"]], check=True)
        retry = wait_for_running_track(workdir, proc, log, skip={first["id"]})
        proc.kill()
        subprocess.run(["scancel", retry["id"]], check=True)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while squeue("--jobs", retry["id"])[0]["state"] not in ("CANCELLED", "COMPLETED", "FAILED"):
            assert time.monotonic() < deadline, "the killed track job did not end"
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"text": log.read_text(), "first": first, "retry": retry}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, shared_dir) -> Path:
    workdir = make_workdir(tmp_path_factory, shared_dir, "local")
    run(workdir, snakemake_cmd(profile=None), {**os.environ, "PYTHONPATH": str(REPO)}, "local")
    return workdir


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, shared_dir, partition, local_run) -> dict:
    """A complete run; then d0 from track on again: an interrupted run, `--unlock` and a run with
    --rerun-incomplete that completes."""
    workdir = make_workdir(tmp_path_factory, shared_dir, "slurm", extra=True)
    env = run_env(partition)
    complete = run(workdir, snakemake_cmd(*CLUSTER_ARGS), env, "complete")
    outputs = {p.relative_to(workdir): p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()}
    interrupted = interrupted_run(workdir, env)
    run(workdir, snakemake_cmd("--unlock"), env, "unlock")  # the killed Snakemake left its lock behind
    rerun = run(workdir, snakemake_cmd("--rerun-incomplete", *CLUSTER_ARGS), env, "rerun")
    return {
        "workdir": workdir,
        "env": env,
        "complete": complete,
        "outputs": outputs,
        "mtimes": mtimes,
        "interrupted": interrupted,
        "rerun": rerun,
    }


def test_one_sbatch_per_video_for_its_preprocessing(slurm_run):
    """8 videos: correspondence + one group job per video reach sbatch, 9 calls (ungrouped: 8 x 7 + 1 = 57)."""
    workdir, text = slurm_run["workdir"], slurm_run["complete"]
    by_name = assert_all_jobs_went_through_sbatch(workdir, text)
    assert sum(len(ids) for ids in submissions(text).values()) == 1 + len(VIDEOS), submissions(text)
    assert {name: len(ids) for name, ids in by_name.items()} == {
        "rule_correspondence": 1,
        "rule_preprocess": len(VIDEOS),
    }
    for slurm_id in by_name["rule_preprocess"]:  # each group job ran all seven stages of one video
        assert sorted(rules_run_in(workdir, slurm_id)) == sorted(GROUPED), slurm_id
        videos = set(re.findall(r"wildcards: video=(\w+)", slurm_log(workdir, slurm_id).read_text()))
        assert len(videos) == 1, (slurm_id, videos)
    # per-stage logs stay per stage
    assert all((workdir / "logs" / video / f"{rule}.log").is_file() for video in VIDEOS for rule in GROUPED)


def test_every_job_went_through_sbatch(slurm_run):
    workdir, interrupted, rerun = slurm_run["workdir"], slurm_run["interrupted"], slurm_run["rerun"]
    # interrupted: one group job (d0 from track on), submitted twice: cancelled, then retried and killed
    assert list(submissions(interrupted["text"]).values()) == [[interrupted["first"]["id"], interrupted["retry"]["id"]]]
    assert not finished(interrupted["text"]), "nothing finished before the kill"
    after = assert_all_jobs_went_through_sbatch(workdir, rerun)
    # the rerun: one group job, d0's unfinished stages (ingest stays done: it was not forced)
    assert list(after) == ["rule_preprocess"] and len(after["rule_preprocess"]) == 1, after
    assert sorted(finished(rerun).values()) == sorted(GROUPED - {"ingest"}), finished(rerun)


def test_cancelled_job_is_retried_with_more_runtime_and_memory(slurm_run):
    first, retry = slurm_run["interrupted"]["first"], slurm_run["interrupted"]["retry"]
    # a group's time limit is the sum of its stages' (neural_renderer/resources.py, from d0's 78 frames): track..qc,
    # six stages at their 10-minute floor at attempt 1 (60 min); at attempt 2 each asks for twice that (120 min)
    size = VideoSize(78, 512, 512)
    minutes = [sum(runtime_min(rule, size, attempt) for rule in GROUPED - {"ingest"}) for attempt in (1, 2)]
    assert minutes == [60, 120]
    limits = tuple(f"{m // 60}:{m % 60:02d}:00" for m in minutes)
    assert (first["time_limit"], retry["time_limit"]) == limits, (first, retry)
    # memory: the group asks for its largest stage's, and a retry for twice that (so a job killed for OUT_OF_MEMORY
    # comes back with more; this cluster does not enforce memory, so the kill itself cannot be provoked here)
    memory = [max(mem_mb(rule, size, attempt) for rule in GROUPED - {"ingest"}) for attempt in (1, 2)]
    assert memory[1] == 2 * memory[0]
    assert (megabytes(first["min_memory"]), megabytes(retry["min_memory"])) == tuple(memory), (first, retry)
    assert re.search(
        rf"rule track:.*?runtime={runtime_min('track', size, 2)}\b", slurm_run["interrupted"]["text"], re.S
    )


def test_rerun_after_kill_redoes_only_unfinished_jobs(slurm_run):
    workdir, rerun, mtimes = slurm_run["workdir"], slurm_run["rerun"], slurm_run["mtimes"]
    assert "track" in finished(rerun).values(), "the killed job's outputs must not be trusted"
    untouched = [p for p in mtimes if "d0" not in p.parts or p.parent.name == "ingest"]
    assert untouched and all(p.stat().st_mtime_ns == mtimes[p] for p in untouched), "finished jobs were redone"
    for rel, content in slurm_run["outputs"].items():  # the redone stages give the same results
        if rel.suffix in (".json", ".npz") and not set(rel.parts) & set(FIT_DERIVED):
            assert (workdir / rel).read_bytes() == content, rel


def h5_items(path: Path) -> dict[str, object]:
    """Every dataset (as an array) and attribute (as 'path@name') of an HDF5 file, creation times left out."""
    items: dict[str, object] = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                items[name] = obj.asstr()[()] if h5py.check_string_dtype(obj.dtype) else obj[()]
            items.update({f"{name}@{k}": v for k, v in obj.attrs.items() if k != "created_utc"})

        visit("/", f)
        f.visititems(visit)
    return items


def assert_same(a: object, b: object, where: str, exact: bool) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}:{key}", exact)
        return
    a, b = np.asarray(a), np.asarray(b)
    if exact or a.dtype.kind not in "fc":
        assert a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    else:
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, equal_nan=True, err_msg=where)


def test_outputs_equal_the_local_run(slurm_run, local_run):
    results, reference = slurm_run["workdir"] / "results", local_run / "results"
    files = sorted(p.relative_to(reference) for p in reference.rglob("*") if p.is_file())
    shared = sorted(
        p.relative_to(results)
        for p in results.rglob("*")
        if p.is_file() and p.relative_to(results).parts[0] not in EXTRA_VIDEOS
    )
    assert files == shared
    assert {f.name for f in files} >= {
        "probe.json",
        "track.h5",
        "crop.h5",
        "fit.h5",
        "gaze.h5",
        "tracking.h5",
        "stats.json",
    }
    for rel in files:
        a, b = reference / rel, results / rel
        exact = not {rel.stem, *rel.parts} & set(FIT_DERIVED)
        if rel.name == "tracking.h5":
            items_a, items_b = h5_items(a), h5_items(b)
            assert items_a.keys() == items_b.keys(), rel
            for key in items_a:  # one group per stage: only /fit and /gaze come from iterative maths
                assert_same(items_a[key], items_b[key], f"{rel}:{key}", not key.startswith(FIT_DERIVED))
        elif rel.suffix == ".h5":
            assert_same(h5_items(a), h5_items(b), str(rel), exact)
        elif rel.suffix == ".json":
            assert_same(json.loads(a.read_text()), json.loads(b.read_text()), str(rel), exact)
        elif rel.suffix == ".npz":
            with np.load(a) as za, np.load(b) as zb:
                assert_same(dict(za), dict(zb), str(rel), exact)
        elif rel.suffix == ".png":
            # a drawing of the fitted values: no byte equality asked, the same layout and a picture in it
            img_a, img_b = cv2.imread(str(a)), cv2.imread(str(b))
            assert img_b is not None and img_a.shape == img_b.shape and img_b.std() > 10, rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel


def test_second_run_submits_nothing(slurm_run):
    text = run(slurm_run["workdir"], snakemake_cmd(*CLUSTER_ARGS), slurm_run["env"], "second")
    assert "Nothing to be done" in text and not submissions(text), text[-3000:]
    assert squeue("--name", run_id(text)) == [], "the controller got a job from the second run"


def test_gpu_rule_gets_a_gpu(tmp_path, shared_dir, partition):
    """A rule asking for `gpu: 1` through set-resources (as the GPU example in profiles/slurm) is scheduled on a GPU."""
    snakefile = write_probe_workflow(tmp_path, shared_dir)
    gpu_profile = tmp_path / "gpu"
    gpu_profile.mkdir()
    (gpu_profile / "config.yaml").write_text("set-resources:\n  probe:\n    gpu: 1\n    runtime: attempt * 5\n")
    cmd = snakemake_cmd("probe.env", *CLUSTER_ARGS, snakefile=snakefile) + ["--profile", str(gpu_profile)]
    text = run(tmp_path, cmd, run_env(partition), "gpu")
    ids = assert_all_jobs_went_through_sbatch(tmp_path, text)
    env = dict(line.split("=", 1) for line in (tmp_path / "probe.env").read_text().splitlines() if "=" in line)
    assert env["SLURM_JOB_ID"] == ids["rule_probe"][-1] and env["SLURM_GPUS_ON_NODE"] == "1", env
    assert env.get("CUDA_VISIBLE_DEVICES"), "no GPU made visible to the job"
    assert env["HDF5_USE_FILE_LOCKING"] == "FALSE"


MODEL_FILES = {
    "face_landmarker.task": "download_face_landmarker",
    "ict_face_light_face.npz": "build_ict_model",
    "w600k_r50.onnx": "fetch_arcface",
}


def test_model_rules_run_on_the_login_node(tmp_path, shared_dir, landmarker_model, partition):
    """download_face_landmarker, build_ict_model and fetch_arcface are localrules: through profiles/slurm they run in
    Snakemake's own process (where a cluster's login node has internet), never through sbatch. The files come from a
    mirror folder (PORTRAIT_ASSET_MIRROR): the landmarker arrives; the ICT archive there holds 2 of the 158 pinned
    files and the ArcFace pack is a stand-in, so those two fail, each on the login node with its one-line reason."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copyfile(landmarker_model, mirror / "face_landmarker.task")
    ict_archive(shared_dir, mirror / ASSETS["ict_facekit"].filename)
    with zipfile.ZipFile(mirror / ASSETS["insightface_buffalo_l"].filename, "w") as z:
        z.writestr("w600k_r50.onnx", b"stand-in")
    workdir = tmp_path / "wd"
    (workdir / "data" / "raw").mkdir(parents=True)
    (workdir / "config.yaml").write_text("raw_dir: data/raw\nresults_dir: results\n")
    models = workdir / "resources" / "models"
    targets = [str(models.relative_to(workdir) / name) for name in MODEL_FILES]
    cmd = snakemake_cmd(*targets, "--keep-going", "--retries", "0", *CLUSTER_ARGS)
    env = {**run_env(partition), MIRROR_ENV: str(mirror)}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=600)
    text = proc.stdout + proc.stderr
    assert sorted(re.findall(r"^localrule (\w+):", text, re.M)) == sorted(MODEL_FILES.values()), text[-4000:]
    assert not submissions(text) and "SLURM jobid" not in text, text[-4000:]
    assert (models / "face_landmarker.task").is_file() and proc.returncode != 0
    assert "pinned files missing" in (workdir / "logs/models/ict_face_light_face.log").read_text()
    assert "sha256 mismatch" in (workdir / "logs/models/w600k_r50.log").read_text()


# train_renderer at a tiny size (64 px, the tiny architecture of test_renderer_workflow) on d18's 30 frames
RESUME_ITERATIONS = 30
RESUME_RENDERER = {
    **TINY,
    "model": {**TINY["model"], "resolution": 64},
    "train": {
        **TINY["train"],
        "iterations": RESUME_ITERATIONS,
        "checkpoint_every": 5,
        "train_frames": 24,
        "test_frames": 6,
        "progress": False,
    },
}


def wait_for_checkpoint(proc: subprocess.Popen, log: Path, checkpoint: Path) -> dict[str, str]:
    """The running SLURM job of train_renderer, once it has written a checkpoint."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before a checkpoint:\n{log.read_text()[-4000:]}")
        m = RUN_ID.search(log.read_text())
        running = [
            job
            for job in (squeue("--name", m.group(1)) if m else [])
            if job["comment"].startswith("rule_train_renderer") and job["state"] == "RUNNING"
        ]
        if running and checkpoint.is_file():
            return running[0]
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of train_renderer within 600 s:\n{log.read_text()[-4000:]}")


def test_train_renderer_cancelled_on_the_gpu_node_resumes_and_equals_an_uninterrupted_run(
    slurm_run, shared_dir, tmp_path
):
    """train_renderer through profiles/slurm on the fake GPU: scancel once a checkpoint exists; Snakemake resubmits it
    (attempt 2: twice the time limit), the retry resumes from the checkpoint (the iteration count continues) and
    its model equals that of an uninterrupted run of the same configuration."""
    workdir, env = slurm_run["workdir"], slurm_run["env"]
    out = workdir / "results" / "d18" / "renderer"
    checkpoint, log = out / "checkpoints" / "last.pt", workdir / "train_renderer.log"
    write_config(workdir, shared_dir, renderer=RESUME_RENDERER)
    # this test node has 2 CPUs and less memory than a GPU node: the thread and memory requests shrink to fit
    cmd = snakemake_cmd(
        "results/d18/renderer/model.pt",
        "--set-threads",
        "train_renderer=2",
        "--set-resources",
        "train_renderer:mem_mb=2000",
        *CLUSTER_ARGS,
    )
    try:
        with open(log, "w") as stream:
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=stream, stderr=subprocess.STDOUT, env=env)
        try:
            first = wait_for_checkpoint(proc, log, checkpoint)
            seen = torch.load(checkpoint, weights_only=True)["iteration"]
            subprocess.run(["scancel", first["id"]], check=True)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                m = RUN_ID.search(log.read_text())  # a failed test leaves no job behind on the cluster
                for job in squeue("--name", m.group(1)) if m else []:
                    subprocess.run(["scancel", job["id"]], check=False)
        text = log.read_text()
        assert proc.returncode == 0, text[-4000:]
        assert 0 < seen < RESUME_ITERATIONS
        # one Snakemake job, two SLURM jobs: the cancelled one and its retry, with attempt 2's time (2 x 720 min)
        (ids,) = submissions(text).values()
        jobs = {job["id"]: job for job in squeue("--jobs", ",".join(ids))}
        assert ids[0] == first["id"] and len(ids) == 2, ids
        assert [jobs[i]["state"] for i in ids] == ["CANCELLED", "COMPLETED"], jobs
        assert [jobs[i]["time_limit"] for i in ids] == ["12:00:00", "1-00:00:00"], jobs
        assert re.search(r"rule train_renderer:.*?runtime=1440", text, re.S)
        # the retry resumed from the cancelled job's last checkpoint; its first logged step is the next one
        retry_log = (workdir / "logs" / "d18" / "train_renderer.log").read_text()
        resumed = int(re.search(r"resumed from \S+ at iteration (\d+)", retry_log).group(1))
        assert seen <= resumed < RESUME_ITERATIONS and resumed % 5 == 0, (seen, resumed)
        assert int(re.search(r" it (\d+) ", retry_log).group(1)) == resumed + 1
        rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
        assert [row["iteration"] for row in rows] == list(range(1, RESUME_ITERATIONS + 1))
        # the same as an uninterrupted run of the same configuration (what the rule passes: no enabled/render)
        cfg = {k: v for k, v in RESUME_RENDERER.items() if k not in ("enabled", "render")}
        reference = tmp_path / "reference" / "model.pt"
        train_renderer.run(workdir / "results" / "d18" / "tracking.h5", reference, cfg=cfg)
        a, b = torch.load(reference, weights_only=True), torch.load(out / "model.pt", weights_only=True)
        assert a["config"] == b["config"] and a["generator"].keys() == b["generator"].keys()
        for key in a["generator"]:
            torch.testing.assert_close(b["generator"][key], a["generator"][key], msg=key)
    finally:  # leave the run as the other tests of this module expect it
        write_config(workdir, shared_dir)
        shutil.rmtree(out, ignore_errors=True)
