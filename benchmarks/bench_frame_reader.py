"""The renderer's frame reader on a long video: frames/s of training batches and peak memory, as training streams them.

    python benchmarks/bench_frame_reader.py [--frames 10000] [--resolution 512] [--batch 16] [--steps 300]
                                            [--workdir /tmp/bench_frame_reader] [--keep]

Builds a long `tracking.h5` by looping the face crops of a shared clip (d6: 300 frames decoded, centre-cropped and
resized to the resolution, gzip-compressed once in the layout `assemble` writes, one chunk per frame, the compressed
chunks then copied N times), with motion datasets as in tests/test_renderer.py. Then, each in its own process (so
each peak RSS is that phase's alone):

- `cache`: `load_tracking` with the frame cache (renderer.frames): decode + write the uncompressed `.npy` once;
- `reader`: the uint8 batches `FrameCache` streams (`StreamingBatches`, which the trainer copies to the GPU and
  converts to float there) with the trainer's prefetch of the next batch, random batches of the training frames,
  with the cache's pages in the page cache (warm) and dropped from it first (cold, posix_fadvise DONTNEED on that
  file only);
- `memory` (only with --memory): today's in-memory path at the same size, for the RSS it would need.

Prints seconds, frames/s and peak RSS (MB) per phase, and tracking.h5 bytes per frame.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
UNIQUE = 300  # decoded frames of the clip, looped


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: since its exec; ru_maxrss may report the forking parent's)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def build_tracking(path: Path, n: int, res: int, video: Path) -> dict:
    import cv2
    import h5py

    from neural_renderer.fitting.camera import FLIP_YZ

    cap, crops = cv2.VideoCapture(str(video)), []
    while len(crops) < UNIQUE:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        s = min(h, w)
        sq = frame[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s, ::-1]
        crops.append(cv2.resize(np.ascontiguousarray(sq), (res, res), interpolation=cv2.INTER_AREA))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        f.attrs["fps"] = 25.0
        kw = {"chunks": (1, res, res, 3), "compression": "gzip", "compression_opts": 4}  # as assemble_tracking
        with h5py.File("seed", "w", driver="core", backing_store=False) as mem:  # compressed once, in memory
            seed = mem.create_dataset("seed", data=np.stack(crops), **kw)
            chunks = [seed.id.read_direct_chunk((i, 0, 0, 0)) for i in range(len(crops))]
        ds = f.create_dataset("frames", shape=(n, res, res, 3), dtype=np.uint8, **kw)
        for i in range(n):
            mask, data = chunks[i % len(chunks)]
            ds.id.write_direct_chunk((i, 0, 0, 0), data, mask)
        f["fit/expression"] = rng.uniform(0, 1, (n, 6)).astype(np.float32)
        f["fit/rotation"] = np.repeat(FLIP_YZ[None].astype(np.float32), n, 0)
        f["fit/translation"] = np.tile(np.array([0, 0, 50], np.float32), (n, 1))
        f["fit/valid"] = np.ones(n, bool)
        f["gaze/head_pitch_yaw_deg"] = np.zeros((n, 2), np.float32)
    return {"seconds": time.perf_counter() - t0, "bytes_per_frame": path.stat().st_size / n}


def phase_cache(tracking: Path, work: Path, res: int) -> dict:
    from neural_renderer.renderer.data import load_tracking

    for old in work.glob("frames-*.npy"):
        old.unlink()
    t0 = time.perf_counter()
    data = load_tracking(tracking, 0.9, 0.1, 16, res, cache_dir=work, in_memory_mb=0)
    seconds = time.perf_counter() - t0
    n = len(data.frames)
    return {
        "seconds": seconds,
        "frames_per_s": n / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "path": str(data.frames.path),
    }


def phase_reader(tracking: Path, work: Path, res: int, batch: int, steps: int, cold: bool) -> dict:
    import torch

    from neural_renderer.renderer.data import FrameCache, load_tracking

    torch.set_num_threads(1)
    data = load_tracking(tracking, 0.9, 0.1, 16, res, cache_dir=work, in_memory_mb=0)
    if cold:
        fd = os.open(data.frames.path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    cache = FrameCache(data.frames, data.train_idx, torch.device("cpu"))
    reader = cache.stream  # the uint8 batches that go to the GPU (FrameCache.batch converts to float there)
    sampler, n_train = torch.Generator().manual_seed(0), len(data.train_idx)
    draw = lambda: torch.randint(n_train, (batch,), generator=sampler)  # noqa: E731
    nxt = draw()
    t0 = time.perf_counter()
    for _ in range(steps):  # as Trainer.sample + Trainer.losses: draw, prefetch the next draw, take the batch
        idx, nxt = nxt, draw()
        reader.prefetch(nxt)
        x = reader.batch(idx)
    seconds = time.perf_counter() - t0
    assert x.shape == (batch, res, res, 3) and reader.misses == 1  # the first batch only
    return {
        "seconds": seconds,
        "frames_per_s": steps * batch / seconds,
        "steps_per_s": steps / seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_memory(tracking: Path, res: int) -> dict:
    from neural_renderer.renderer.data import load_tracking

    t0 = time.perf_counter()
    data = load_tracking(tracking, 0.9, 0.1, 16, res)
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "frames": len(data.frames)}


def run_phase(args: argparse.Namespace, phase: str, *extra: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--workdir",
        str(args.workdir),
        "--resolution",
        str(args.resolution),
    ]
    cmd += ["--batch", str(args.batch), "--steps", str(args.steps), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench_frame_reader"))
    p.add_argument("--video", type=Path, default=SHARED / "testdata" / "videos" / "d6.mp4")
    p.add_argument("--memory", action="store_true", help="also load the frames in memory (needs their size in RAM)")
    p.add_argument("--keep", action="store_true", help="keep tracking.h5 and the frame cache")
    p.add_argument("--phase", choices=["cache", "reader", "reader-cold", "memory"])
    args = p.parse_args()
    tracking, work = args.workdir / "tracking.h5", args.workdir / "renderer"
    if args.phase:
        result = {
            "cache": lambda: phase_cache(tracking, work, args.resolution),
            "reader": lambda: phase_reader(tracking, work, args.resolution, args.batch, args.steps, cold=False),
            "reader-cold": lambda: phase_reader(tracking, work, args.resolution, args.batch, args.steps, cold=True),
            "memory": lambda: phase_memory(tracking, args.resolution),
        }[args.phase]()
        print(json.dumps(result))
        return
    work.mkdir(parents=True, exist_ok=True)
    built = build_tracking(tracking, args.frames, args.resolution, args.video)
    gb = args.frames * args.resolution**2 * 3 / 1e9
    print(f"{args.frames} frames at {args.resolution} px ({gb:.1f} GB uncompressed), batch {args.batch}")
    print(f"tracking.h5: {built['bytes_per_frame'] / 1e3:.0f} kB per frame (gzip 4, looped {UNIQUE}-frame clip)")
    rows = [("cache (decode + write once)", run_phase(args, "cache"))]
    rows.append(("reader, warm page cache", run_phase(args, "reader")))
    rows.append(("reader, cold (file dropped from page cache)", run_phase(args, "reader-cold")))
    if args.memory:
        rows.append(("in memory (today's path)", run_phase(args, "memory")))
    print(f"{'phase':45s} {'seconds':>8s} {'frames/s':>9s} {'steps/s':>8s} {'peak RSS MB':>12s}")
    for name, r in rows:
        fps = f"{r['frames_per_s']:.0f}" if "frames_per_s" in r else "-"
        sps = f"{r['steps_per_s']:.1f}" if "steps_per_s" in r else "-"
        print(f"{name:45s} {r['seconds']:8.1f} {fps:>9s} {sps:>8s} {r['peak_rss_mb']:12.0f}")
    if not args.keep:
        tracking.unlink()
        for f in work.glob("frames-*.npy"):
            f.unlink()


if __name__ == "__main__":
    main()
