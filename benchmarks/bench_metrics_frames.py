"""Throughput (frames/s, CPU) of the per-frame metrics: L1, PSNR, SSIM, the dlib identity embedder and extract_motion.

    python benchmarks/bench_metrics_frames.py [--video d6.mp4] [--frames 64] [--sizes 256 512] [--repeat 2]

The frames are real frames of a shared test video resized to square crops; the "generated" side is the same frames
shifted by 2 pixels with a little noise (the metrics' cost does not depend on the content, except the detector's).
extract_motion is timed per call on all frames (one landmarker + one fit per call, as the metrics stage calls it),
with the correspondence file built beforehand and MediaPipe/torch imported by a warm-up call. --json PATH also writes
the numbers as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from neural_renderer.metrics.identity import make_embedder
from neural_renderer.metrics.image import l1, psnr, ssim
from neural_renderer.metrics.motion import extract_motion
from neural_renderer.stages import correspondence
from neural_renderer.video import iter_frames, probe_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=SHARED / "testdata" / "videos" / "d6.mp4")
    ap.add_argument("--task", type=Path, default=SHARED / "models" / "face_landmarker.task")
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "ict_face_light_face.npz")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per measurement (the best is reported)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()

    info = probe_video(args.video)
    source = list(itertools.islice(iter_frames(args.video, info), args.frames))
    n = len(source)
    with tempfile.TemporaryDirectory() as tmp:
        corr = Path(tmp) / "correspondence.npz"
        correspondence.run(args.model, args.task, corr)
        motion_kw = dict(landmarker_model=args.task, morphable_model=args.model, correspondence=corr, device="cpu")
        embed = make_embedder("dlib")
        rng = np.random.default_rng(0)
        report: dict[str, dict[str, float]] = {}
        print(f"video {args.video.name}: {info.width}x{info.height}, {n} frames; CPU, {os.cpu_count()} cores; best of {args.repeat}")
        print(f"{'metric':18s}" + "".join(f"{f'{s} px':>14s}" for s in args.sizes) + "   (frames/s)")
        rows: dict[str, list[float]] = {}
        for size in args.sizes:
            real = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in source])
            gen = np.clip(np.roll(real, 2, axis=2).astype(np.int16) + rng.integers(-4, 5, real.shape), 0, 255).astype(np.uint8)
            extract_motion(real[:2], info.fps, **motion_kw)  # warm-up: imports, first landmarker
            timings = {
                "l1": best_seconds(lambda: l1(real, gen), args.repeat),
                "psnr": best_seconds(lambda: psnr(real, gen), args.repeat),
                "ssim": best_seconds(lambda: ssim(real, gen), args.repeat),
                "dlib_embedder": best_seconds(lambda: embed(gen), args.repeat),
                "extract_motion": best_seconds(lambda: extract_motion(gen, info.fps, **motion_kw), args.repeat),
            }
            valid = embed(gen)[1].mean()
            report[str(size)] = {k: n / v for k, v in timings.items()} | {"dlib_detection_rate": float(valid)}
            for k, v in timings.items():
                rows.setdefault(k, []).append(n / v)
        for k, values in rows.items():
            print(f"{k:18s}" + "".join(f"{v:14.1f}" for v in values))
        print("dlib detection rate " + ", ".join(f"{s} px: {report[str(s)]['dlib_detection_rate']:.2f}" for s in args.sizes))
    if args.json:
        args.json.write_text(json.dumps({"video": str(args.video), "frames": n, "frames_per_s": report}, indent=2))


if __name__ == "__main__":
    main()
