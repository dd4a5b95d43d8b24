"""Speed of the metric networks: frames/s of LPIPS (alex, vgg), Inception features (FID) and I3D features (FVD).

CPU (and CUDA when present):  python benchmarks/bench_metrics_networks.py
Options: --res 256 512, --devices cpu cuda, --frames N (per measurement; default 16 on CPU, 256 on CUDA).
Synthetic uint8 frames (speed does not depend on content); one warm-up batch, then the timed call. LPIPS counts frame
pairs; I3D counts frames (16-frame clips, non-overlapping). Inception and I3D resize every input to 299 / 224 first,
so their speed barely depends on the input size; LPIPS runs at the input size.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neural_renderer.metrics.i3d import I3DFeatures
from neural_renderer.metrics.inception import InceptionFeatures
from neural_renderer.metrics.lpips import LPIPS, lpips_frames


def _timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def bench(device: str, res: int, n: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8)
    bs = 16 if device == "cuda" else 4
    out = {}
    for net in ("alex", "vgg"):
        model = LPIPS(net)
        lpips_frames(a[:bs], b[:bs], model=model, device=device, batch_size=bs)
        out[f"lpips_{net}"] = n / _timed(lambda: lpips_frames(a, b, model=model, device=device, batch_size=bs), device)
    inception = InceptionFeatures(device)
    inception(a[:bs], batch_size=bs)
    out["inception"] = n / _timed(lambda: inception(a, batch_size=bs * 2), device)
    i3d = I3DFeatures(device)
    clips = max(n // 16, 1)
    video = np.concatenate([a] * -(-clips * 16 // n))[: clips * 16]
    i3d(video[:16], batch_size=1)
    out["i3d"] = clips * 16 / _timed(lambda: i3d(video, batch_size=4 if device == "cuda" else 1), device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    parser.add_argument("--frames", type=int, default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads" + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"{'device':>6} {'res':>5} {'lpips alex':>11} {'lpips vgg':>10} {'inception':>10} {'i3d':>8}   (frames/s)")
    for device in args.devices:
        n = args.frames or (256 if device == "cuda" else 16)
        for res in args.res:
            r = bench(device, res, n)
            print(f"{device:>6} {res:>5} {r['lpips_alex']:>11.1f} {r['lpips_vgg']:>10.1f} {r['inception']:>10.1f} {r['i3d']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
