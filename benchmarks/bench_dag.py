"""Benchmark of the workflow at scale: DAG build time, jobs planned and SLURM submissions for N videos.

A batch of N videos is N symbolic links to one clip in a temporary project folder (its own config.yaml: the
shipped one, so renderer and metrics are on; its own data/raw/, results/ and logs/, never the repository's). For each
N, each code tree (this checkout, and with --compare-to REV the same files at another commit, exported with
`git archive`) and each mode, one `snakemake -n` process is timed:

- `plain`: `snakemake -n`, what a user types first (no profile: Snakemake's bare default resources);
- `slurm`: `snakemake --profile profiles/slurm -n`, the cluster dry run; its output also gives the submissions: one
  per group job plus one per job outside a group, leaving out `localrules` and the target rule `all`, which run in
  the Snakemake process itself.

Printed per run: wall seconds, CPU seconds of the snakemake process (user + sys: on a shared machine the wall time
also counts other people's work), ms per video, jobs planned (Snakemake's job-stats total) and submissions; with
--compare-to, the ratio new / old of both times for each (N, mode), measured back to back in one run.

    python benchmarks/bench_dag.py --videos 100 1000 5000 [--compare-to 88c0725] [--modes plain slurm]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCALRULES = re.compile(r"^localrules:\s*\n((?:\s+\w+,?\s*\n)+)", re.M)


def export_tree(rev: str, dest: Path) -> Path:
    """The repository's tracked files at `rev`, unpacked into `dest` (no checkout, no worktree)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def local_rules(tree: Path) -> set[str]:
    """Rules that never reach sbatch: the `localrules:` of rules/*.smk and the target rule `all` (no script)."""
    names = {"all"}
    for smk in (tree / "rules").glob("*.smk"):
        for block in LOCALRULES.findall(smk.read_text()):
            names.update(n.strip(", \n") for n in block.split(",") if n.strip(", \n"))
    return names


def make_batch(workdir: Path, n: int, clip: Path, tree: Path) -> None:
    """N linked videos and the shipped config (its relative paths resolve inside `workdir`)."""
    raw = workdir / "data" / "raw"
    raw.mkdir(parents=True)
    for i in range(n):
        os.symlink(clip, raw / f"v{i:05d}{clip.suffix}")
    (workdir / "config.yaml").write_text((tree / "config.yaml").read_text())


def count(text: str, local: set[str]) -> tuple[int, int]:
    """(jobs planned, cluster submissions) from a dry run's output."""
    m = re.search(r"^total\s+(\d+)$", text, re.M)
    if not m:
        raise RuntimeError(f"no job stats in the dry run's output:\n{text[-3000:]}")
    groups = len(re.findall(r"\] Group job \S+ \(jobs in lexicogr\. order\):$", text, re.M))
    singles = [r for r in re.findall(r"^(?:local)?rule (\w+):$", text, re.M) if r not in local]  # unindented
    return int(m.group(1)), groups + len(singles)


def dry_run(tree: Path, workdir: Path, mode: str) -> dict:
    args = ["--profile", str(tree / "profiles" / "slurm")] if mode == "slurm" else ["--cores", "1"]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(tree / "Snakefile"), *args, "-n"]
    env = {**os.environ, "PYTHONPATH": str(tree), "PORTRAIT_SLURM_PARTITION": "", "PORTRAIT_SLURM_ACCOUNT": ""}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:  # output of 5,000 videos: hundreds of MB, not kept in memory twice
        proc = subprocess.run(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {workdir}:\n{text[-3000:]}")
    jobs, submissions = count(text, local_rules(tree))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "jobs": jobs, "submissions": submissions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--compare-to", metavar="REV", help="also time the code of this commit (e.g. 88c0725)")
    parser.add_argument("--modes", nargs="+", choices=("plain", "slurm"), default=["plain", "slurm"])
    parser.add_argument(
        "--clip", type=Path, default=REPO / "data" / "raw" / "sample.mp4", help="the clip linked N times"
    )
    args = parser.parse_args()
    clip = args.clip.resolve()
    if not clip.is_file():
        parser.error(f"{clip}: no such clip (git checkout data/raw/sample.mp4, or pass --clip)")

    with tempfile.TemporaryDirectory(prefix="bench_dag_") as tmp:
        trees = {"new": REPO}
        if args.compare_to:
            trees = {"old": export_tree(args.compare_to, Path(tmp) / "old"), "new": REPO}
        print(
            f"{'videos':>7} {'mode':>5} {'code':>4} {'wall s':>8} {'cpu s':>8} "
            f"{'cpu ms/video':>12} {'jobs':>7} {'submissions':>11}"
        )
        for n in args.videos:
            for mode in args.modes:
                results = {}
                for label, tree in trees.items():
                    workdir = Path(tmp) / f"{label}-{mode}-{n}"
                    make_batch(workdir, n, clip, tree)
                    r = results[label] = dry_run(tree, workdir, mode)
                    submissions = r["submissions"] if mode == "slurm" else "-"  # no profile: nothing is submitted
                    print(
                        f"{n:>7} {mode:>5} {label:>4} {r['wall']:>8.1f} {r['cpu']:>8.1f} {1000 * r['cpu'] / n:>12.1f} "
                        f"{r['jobs']:>7} {submissions:>11}",
                        flush=True,
                    )
                if len(results) == 2:
                    old, new = results["old"], results["new"]
                    line = (
                        f"{n:>7} {mode:>5} new/old: wall {new['wall'] / old['wall']:.2f}, "
                        f"cpu {new['cpu'] / old['cpu']:.2f}"
                    )
                    if mode == "slurm":
                        line += f", submissions {new['submissions']} vs {old['submissions']}"
                    print(line, flush=True)


if __name__ == "__main__":
    main()
