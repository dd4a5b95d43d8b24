"""Metric throughput in frames/s on real frames (d6), on the CPU and on CUDA when present.

    python benchmarks/bench_metrics.py                 # 256 and 512 px, 32 frames
    python benchmarks/bench_metrics.py --sizes 256 --frames 16 --devices cpu

Each metric runs once to warm up, then is timed over the same frames. Motion = MediaPipe tracking + the 3DMM fit
+ gaze on the whole set (the fit's fixed cost dominates small sets). dlib and motion run on the CPU only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from conftest import read_face_frames  # noqa: E402

from neural_renderer.metrics.i3d import I3DFeatures  # noqa: E402
from neural_renderer.metrics.identity import make_embedder  # noqa: E402
from neural_renderer.metrics.image import l1, psnr, ssim  # noqa: E402
from neural_renderer.metrics.inception import InceptionFeatures  # noqa: E402
from neural_renderer.metrics.motion import extract_motion  # noqa: E402
from neural_renderer.perceptual.lpips import LPIPS, lpips_frames  # noqa: E402
from neural_renderer.stages import correspondence  # noqa: E402


def rate(fn, n_frames: int, device: str) -> float:
    fn()  # warm-up (weights to device, cudnn autotune, MediaPipe graph)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return n_frames / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    args = ap.parse_args()
    shared = REPO.parent / "shared"
    models = shared / "models"
    corr = Path(tempfile.mkdtemp()) / "correspondence.npz"
    correspondence.run(models / "ict_face_light_face.npz", models / "face_landmarker.task", corr)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; frames/s over {args.frames} frames of d6")
    print(f"{'metric':<22} {'device':<6} " + " ".join(f"{s:>8}px" for s in args.sizes))
    frames = {s: read_face_frames(shared / "testdata" / "videos", "d6", args.frames, s) for s in args.sizes}
    other = {s: np.ascontiguousarray(f[::-1]) for s, f in frames.items()}
    rows: list[tuple[str, str, dict]] = []
    cpu_only = {
        "l1+psnr": lambda x, y, d: (l1(x, y), psnr(x, y)),
        "ssim (scikit-image)": lambda x, y, d: ssim(x, y),
    }
    for name, fn in cpu_only.items():
        rows.append(
            (name, "cpu", {s: rate(lambda: fn(frames[s], other[s], "cpu"), args.frames, "cpu") for s in args.sizes})
        )
    for device in args.devices:
        alex, vgg = LPIPS("alex").to(device), LPIPS("vgg").to(device)
        inception, i3d = InceptionFeatures(device), I3DFeatures(device)
        nets = {
            "lpips alex": lambda s: lpips_frames(frames[s], other[s], device=device, model=alex),
            "lpips vgg": lambda s: lpips_frames(frames[s], other[s], device=device, model=vgg),
            "inception (FID)": lambda s: inception(frames[s]),
            "i3d (FVD)": lambda s: i3d(frames[s]),
        }
        for name, fn in nets.items():
            rows.append((name, device, {s: rate(lambda: fn(s), args.frames, device) for s in args.sizes}))
    dlib = make_embedder("dlib")
    rows.append(
        ("dlib identity (CSIM)", "cpu", {s: rate(lambda: dlib(frames[s]), args.frames, "cpu") for s in args.sizes})
    )
    kw = {
        "landmarker_model": models / "face_landmarker.task",
        "morphable_model": models / "ict_face_light_face.npz",
        "correspondence": corr,
    }
    rows.append(
        (
            "motion (track+fit)",
            "cpu",
            {s: rate(lambda: extract_motion(frames[s], 30.0, **kw), args.frames, "cpu") for s in args.sizes},
        )
    )
    for name, device, values in rows:
        print(f"{name:<22} {device:<6} " + " ".join(f"{values[s]:>10.1f}" for s in args.sizes))


if __name__ == "__main__":
    main()
