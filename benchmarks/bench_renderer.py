"""Neural renderer speed: training it/s (full G + D step, all losses) and inference fps, eager vs torch.compile.

GPU (the real numbers):   python benchmarks/bench_renderer.py   # train 512 batch 16; infer 512 and 1024 batch 1
CPU smoke test (tiny):    python benchmarks/bench_renderer.py --tiny     # 64 px, tiny model, few steps
Options: --train-res, --infer-res 512 1024, --batch, --steps, --no-compile, --variant cnn, --no-perceptual.
Uses synthetic frames and conditioning (speed does not depend on content); the training step is the one of
neural_renderer.renderer.train (data on the device as uint8, bf16 autocast on CUDA, channels_last, fused Adam), with
the adversarial terms on from the first step (after the warm-up, as most of a seed run is).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neural_renderer.config import build_dataclass
from neural_renderer.device import resolve_device
from neural_renderer.renderer.config import RendererConfig, resolve_renderer_config
from neural_renderer.renderer.data import TrackingData
from neural_renderer.renderer.model import PortraitGenerator
from neural_renderer.renderer.train import train

TINY_MODEL = {
    "width": 32,
    "feature_dim": 8,
    "pixel_freqs": 4,
    "latent_dim": 8,
    "decoder_channels": 16,
    "decoder_res_blocks": 2,
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def synthetic(n: int, res: int, ke: int = 53) -> TrackingData:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (n, res, res, 3), dtype=np.uint8)
    pose = np.concatenate([np.tile([1, 0, 0, 0, 1, 0], (n, 1)), rng.normal(0, 1, (n, 3))], 1).astype(np.float32)
    mouth = np.tile(np.array([[0.3, 0.6, 0.7, 0.9]]) * res, (n, 1)).astype(np.int64)
    return TrackingData(
        None,
        frames,
        pose,
        rng.normal(0, 0.1, (n, 2)).astype(np.float32),
        rng.uniform(0, 1, (n, ke)).astype(np.float32),
        np.ones(n, bool),
        25.0,
        np.arange(n),
        np.arange(n - 1, n),
        mouth,
    )


def bench_train(cfg: dict, res: int, steps: int, warmup: int, compile_: bool, tmp: str) -> float:
    """Iterations per second of the real training loop (timed via its per-step hook, after warm-up)."""
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    cfg = {
        **cfg,
        "train": {
            **cfg["train"],
            "iterations": warmup + steps,
            "compile": compile_,
            "checkpoint_every": 10**9,
            "progress": False,
        },
    }
    rcfg, placement = resolve_renderer_config(cfg)
    device = placement.device
    data = synthetic(max(64, rcfg.train.batch_size * 4) if res <= 512 else 32, res)
    stamps = {}

    def hook(it, _row):
        if it in (warmup, warmup + steps):
            _sync(device)
            stamps[it] = time.perf_counter()

    train(data, rcfg, f"{tmp}/model.pt", tmp, placement, hook=hook)
    return steps / (stamps[warmup + steps] - stamps[warmup])


@torch.inference_mode()
def bench_infer(cfg: dict, res: int, frames: int, warmup: int, compile_: bool) -> float:
    rcfg = build_dataclass(RendererConfig, cfg)
    device = resolve_device(rcfg.train.device)
    gen = PortraitGenerator(rcfg.model, res, 53, 16).to(device).eval()
    if rcfg.train.channels_last:
        gen = gen.to(memory_format=torch.channels_last)
    if compile_:
        torch._dynamo.reset()  # a fresh compile per resolution (no shape-polymorphic reuse)
    fn = torch.compile(gen) if compile_ else gen
    pose, gaze, expr, lat = (
        torch.zeros(1, 9, device=device),
        torch.zeros(1, 2, device=device),
        torch.zeros(1, 53, device=device),
        gen.latents.weight[:1],
    )
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and rcfg.train.amp
        else torch.autocast("cpu", enabled=False)
    )
    with amp:
        for _ in range(warmup):
            fn(pose, gaze, expr, lat)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(frames):
            img, _ = fn(pose, gaze, expr, lat)
            img.clamp(-1, 1).add(1).mul(127.5).byte().cpu()  # include the copy back, as the render path does
        _sync(device)
    return frames / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="CPU smoke test: 64 px, tiny model")
    p.add_argument("--train-res", type=int, default=512)
    p.add_argument("--infer-res", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--variant", default="full", choices=["full", "cnn"])
    p.add_argument("--no-perceptual", action="store_true", help="without the LPIPS-VGG16 perceptual loss")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    cfg = {
        "preset": "seed",
        "model": {"variant": a.variant},
        "train": {
            "batch_size": a.batch,
            "device": a.device,
            "w_perceptual": 0.0 if a.no_perceptual else 1.0,
            "adv_warmup": 0,
            "adv_ramp": 0,
            "log_every": 50,
            "sample_every": 0,
            "allow_slow_cpu": True,
        },
    }
    if a.tiny:
        cfg["model"].update(TINY_MODEL)
        cfg["train"].update(disc_channels=8, disc_layers=2, batch_size=4)
        a.train_res, a.infer_res, a.steps, a.frames = 64, [64, 128], 10, 20
    device = resolve_device(a.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"device: {name}; torch {torch.__version__}; model {a.variant}{' (tiny)' if a.tiny else ''}; "
        f"perceptual loss {'off' if a.no_perceptual else 'on (LPIPS-VGG16)'}"
    )
    modes = [False] if a.no_compile else [False, True]
    warm_train, warm_infer = (3, 3) if a.tiny else (10, 20)
    for compile_ in modes:
        label = "compiled" if compile_ else "eager"
        try:
            ips = bench_train(cfg, a.train_res, a.steps, warm_train, compile_, "/tmp/bench_renderer")
            print(
                f"train  {label:8s} res {a.train_res:4d} batch {cfg['train']['batch_size']:2d}: {ips:8.2f} it/s  "
                f"({ips * cfg['train']['batch_size']:.1f} frames/s)"
            )
        except Exception as exc:  # noqa: BLE001 - e.g. torch.compile without a compiler, OOM: report and go on
            print(f"train  {label:8s} res {a.train_res}: failed: {type(exc).__name__}: {str(exc)[:200]}")
        for res in a.infer_res:
            try:
                fps = bench_infer(cfg, res, a.frames, warm_infer, compile_)
                print(f"infer  {label:8s} res {res:4d} batch  1: {fps:8.2f} fps")
            except Exception as exc:  # noqa: BLE001
                print(f"infer  {label:8s} res {res}: failed: {type(exc).__name__}: {str(exc)[:200]}")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
