"""profiles/default (loaded by a plain `snakemake`) and profiles/slurm: a plain run plans with the default profile's
settings, the SLURM profile's per-rule threads and resources (combined with the default profile, as Snakemake loads
them) equal what the rules declare (so the profile is the rules' numbers, ready to tune, never silently different),
heavy rules get more runtime on each retry, and HDF5 file locking is off for shared file systems.

The cluster itself is exercised in tests/test_slurm.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from snakemake.profiles import ProfileConfigFileParser
from test_workflow import write_config

from neural_renderer.resources import SIZED_RULES

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"
HEAVY = {"train_renderer": 720}  # rule -> runtime (minutes) of its first attempt (track, fit: tests/test_resources.py)


def parse_profile(name: str, env: dict[str, str] | None = None) -> dict:
    """The profile as Snakemake reads it: {option: value or list of 'key=value' / 'rule:key=value' strings}."""
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        with open(PROFILES / name / "config.v8+.yaml") as stream:
            return dict(ProfileConfigFileParser().parse(stream))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def set_resources(profile: dict) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for entry in profile["set-resources"]:
        rule, assignment = entry.split(":", 1)
        key, value = assignment.split("=", 1)
        out.setdefault(rule, {})[key] = value
    return out


def dry_run_resources(workdir: Path, *args: str) -> dict[str, dict[str, int]]:
    """{rule: {threads, mem_mb, runtime}} as a forced dry run of the whole workflow would submit them."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--dry-run",
        "--forceall",
        "--cores",
        "2",
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return jobs_of(proc.stdout + proc.stderr)


def jobs_of(text: str) -> dict[str, dict[str, int]]:
    """{rule: {threads, mem_mb, runtime}} of the jobs a dry run printed."""
    jobs = {}
    # jobs of a group job are printed indented below its header
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m or m.group(1) == "all":
            continue
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        resources = dict(re.findall(r"\b(mem_mb|runtime)=(\d+)", block))
        jobs[m.group(1)] = {
            "threads": int(threads.group(1)) if threads else 1,
            **{k: int(v) for k, v in resources.items()},
        }
    return jobs


@pytest.fixture(scope="module")
def dry_workflow(tmp_path_factory, shared_dir):
    workdir = tmp_path_factory.mktemp("profiles")
    raw = workdir / "data" / "raw"
    raw.mkdir(parents=True)
    os.symlink(shared_dir / "testdata" / "videos" / "d0.mp4", raw / "d0.mp4")
    write_config(workdir, shared_dir)
    return workdir


def test_slurm_profile_resources_equal_the_rules_own(dry_workflow):
    declared = dry_run_resources(dry_workflow, "--workflow-profile", "none")  # the rules alone
    assert {"ingest", "track", "crop", "correspondence", "fit", "gaze", "assemble", "qc"} <= set(declared)
    profile = parse_profile("slurm")
    threads = dict(entry.split("=") for entry in profile["set-threads"])
    # every rule of the workflow (models' download rules included) is listed, and nothing else; the per-video
    # preprocessing rules' memory and time follow the video (rules' own functions, not restated: test_resources.py)
    rule_names = set(re.findall(r"^rule (\w+):", "".join(p.read_text() for p in (REPO / "rules").glob("*.smk")), re.M))
    assert set(threads) == rule_names and set(set_resources(profile)) == rule_names - SIZED_RULES, rule_names
    # as a user gets them: profiles/default (the workflow profile) is loaded with it
    assert dry_run_resources(dry_workflow, "--profile", str(PROFILES / "slurm")) == declared


def test_profiles_agree_where_both_set_a_key():
    """profiles/default's keys win over profiles/slurm's (Snakemake's order): where both set one, it must be equal."""
    default, slurm = parse_profile("default"), parse_profile("slurm")
    both = set(default) & set(slurm)
    assert {"rerun-incomplete", "keep-going"} <= both
    assert {key: default[key] for key in both} == {key: slurm[key] for key in both}
    assert not {"set-threads", "set-resources", "default-resources"} & set(default), "would replace profiles/slurm's"


def test_plain_snakemake_plans_with_the_default_profile(dry_workflow):
    """A plain `snakemake -n` loads profiles/default by itself: all cores (jobs keep the threads their rules ask for,
    not the single core of a dry run without a profile) and shell commands printed; `--workflow-profile none` (the
    control) loses both."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = {}
    for name, extra in (("default", []), ("none", ["--workflow-profile", "none"])):
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--dry-run", "--forceall", *extra]
        proc = subprocess.run(cmd, cwd=dry_workflow, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[name] = proc.stdout + proc.stderr
    assert f"Using workflow specific profile {PROFILES / 'default'} for" in runs["default"]
    assert "workflow specific profile" not in runs["none"]
    cores = os.cpu_count() or 1
    assert jobs_of(runs["default"])["track"]["threads"] == min(2, cores)  # rules/track.smk: threads: 2
    assert jobs_of(runs["none"])["track"]["threads"] == 1
    assert "Shell command:" in runs["default"] and "Shell command:" not in runs["none"]  # printshellcmds


def test_plain_snakemake_runs_with_the_machines_resources(tmp_path, shared_dir):
    """A real plain run (no --cores, no --profile): all cores, and the default profile's resource limits: one GPU job
    at a time, and memory that every job fits."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    os.symlink(shared_dir / "testdata" / "videos" / "d0.mp4", raw / "d0.mp4")
    write_config(tmp_path, shared_dir)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "results/d0/ingest/probe.json"]
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and (tmp_path / "results" / "d0" / "ingest" / "probe.json").is_file(), text[-3000:]
    assert f"Provided cores: {os.cpu_count()}" in text, text[-3000:]
    line = re.search(r"Provided resources: (.*)", text).group(1)  # gpu=Resource("gpu", 1), mem_mb=...
    provided = dict(re.findall(r"(\w+)=(?:Resource\(\"\w+\", )?(\d+)", line))
    assert provided["gpu"] == "1", provided
    # every job fits the memory limit (Snakemake refuses one asking for more), however small the machine
    largest = max(int(m) for p in (REPO / "rules").glob("*.smk") for m in re.findall(r"mem_mb=(\d+)", p.read_text()))
    assert int(provided["mem_mb"]) >= largest, (provided, largest)


def test_slurm_profile_makes_one_preprocessing_job_per_video(tmp_path, shared_dir):
    """profiles/slurm's dry run: each video's seven short stages form one group job; the rest stay single jobs."""
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    for name in ("a", "b"):
        os.symlink(shared_dir / "testdata" / "videos" / "d0.mp4", raw / f"{name}.mp4")
    write_config(tmp_path, shared_dir)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--profile", str(PROFILES / "slurm"), "-n"]
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    groups = re.split(r"^.*Group job preprocess \(jobs in lexicogr\. order\):$", proc.stdout, flags=re.M)[1:]
    assert len(groups) == 2, proc.stdout[-3000:]
    grouped = {"ingest", "track", "crop", "fit", "gaze", "assemble", "qc"}
    for text in groups:
        members = re.findall(r"^    rule (\w+):$", text, re.M)  # indented: inside the group job
        videos = set(re.findall(r"^        wildcards: video=(\w+)$", text, re.M))
        assert sorted(members) == sorted(grouped) and len(videos) == 1, (members, videos)
    singles = re.findall(r"^rule (\w+):$", proc.stdout, re.M)
    assert not grouped & set(singles) and "correspondence" in singles, singles
    assert parse_profile("slurm")["group-components"] == ["preprocess=1"]


def test_heavy_rules_get_more_runtime_on_each_retry():
    resources = set_resources(parse_profile("slurm"))
    for rule, first in HEAVY.items():
        # Snakemake evaluates a resource string as a Python expression of `attempt` (1, 2, ... on retries)
        runtimes = [eval(resources[rule]["runtime"], {"attempt": attempt}) for attempt in (1, 2, 3)]
        assert runtimes == [first, 2 * first, 3 * first], (rule, runtimes)
    assert int(parse_profile("slurm")["retries"]) >= 1


def test_slurm_profile_reads_partition_and_account_from_the_environment():
    unset = parse_profile("slurm", {"PORTRAIT_SLURM_PARTITION": "", "PORTRAIT_SLURM_ACCOUNT": ""})
    assert not [r for r in unset["default-resources"] if r.startswith(("slurm_partition", "slurm_account"))]
    both = parse_profile("slurm", {"PORTRAIT_SLURM_PARTITION": "all", "PORTRAIT_SLURM_ACCOUNT": "123"})
    # quoted, so that names like `all` or `123` stay strings when Snakemake evaluates them
    assert {"slurm_partition='all'", "slurm_account='123'"} <= set(both["default-resources"])
    assert parse_profile("slurm")["executor"] == "slurm"


def write_probe_workflow(workdir: Path, shared: Path) -> Path:
    """This workflow plus a rule `probe` that records its job's environment in probe.env; returns the Snakefile."""
    raw = workdir / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    write_config(workdir, shared)
    snakefile = workdir / "Snakefile.probe"
    snakefile.write_text(
        f"include: {str(REPO / 'Snakefile')!r}\n\n"
        "rule probe:\n"
        "    output: 'probe.env'\n"
        "    resources: mem_mb=100, runtime=5\n"
        "    shell: 'env > {output}'\n"
    )
    return snakefile


def test_jobs_run_with_hdf5_file_locking_off(tmp_path, shared_dir):
    """HDF5 locks fail on many NFS/Lustre mounts: the workflow turns them off (unless set) for every job."""
    assert "HDF5_USE_FILE_LOCKING" in parse_profile("slurm")["envvars"]
    snakefile = write_probe_workflow(tmp_path, shared_dir)
    env = {k: v for k, v in os.environ.items() if k != "HDF5_USE_FILE_LOCKING"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--workflow-profile", str(PROFILES / "default")]
    cmd.append("probe.env")
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, env={**env, "PYTHONPATH": str(REPO)}, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "HDF5_USE_FILE_LOCKING=FALSE" in (tmp_path / "probe.env").read_text().splitlines()


def test_job_arrays_are_opt_in_and_leave_out_the_preprocessing_group():
    """PORTRAIT_SLURM_ARRAYS=1 submits the per-video GPU and metrics rules as job arrays; never the grouped, sized
    preprocessing rules (group jobs cannot be arrays; an array asks for its first job's resources for all)."""
    assert "slurm-array-jobs" not in parse_profile("slurm")
    arrays = set(parse_profile("slurm", {"PORTRAIT_SLURM_ARRAYS": "1"})["slurm-array-jobs"].split(","))
    rules = REPO / "rules"
    rule_names = set(re.findall(r"^rule (\w+):", "".join(p.read_text() for p in rules.glob("*.smk")), re.M))
    assert {"train_renderer", "render", "real_features", "rendered_features", "metrics"} <= arrays <= rule_names
    assert not arrays & SIZED_RULES
    grouped = set(
        re.findall(r"^rule (\w+):(?:(?!^rule ).)*?group:\s*\n\s*\"preprocess\"", rules_text(rules), re.M | re.S)
    )
    assert grouped == SIZED_RULES and not arrays & grouped


def rules_text(rules: Path) -> str:
    return "".join(p.read_text() for p in sorted(rules.glob("*.smk")))
