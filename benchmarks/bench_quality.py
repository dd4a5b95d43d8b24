"""Renderer quality on held-out frames, against baselines a renderer must beat.

For each video: the project's real stages make `tracking.h5` (ingest -> ... -> assemble), then the `full` renderer
and the `cnn` ablation train with the same preset and budget, and both render the held-out test frames (the end of
the video) from their tracked parameters. Scored on the same frames at the renderer's resolution:

- `full`, `cnn`: the renderers (mean latent code, as the `render` rule);
- `mean_frame`: the mean training frame (a constant image);
- `nearest_frame`: the training frame whose standardised pose and expression are closest to the test frame's
  (retrieval: a renderer that only memorised its training frames scores like this).

Metrics: L1, PSNR, SSIM, LPIPS (AlexNet, the metrics stage's default; training uses VGG16), and L1 inside the mouth
box (lip landmarks). Jaw sweep: the mean absolute change of the mouth region between renders of the test frames
with jawOpen at its 5th and 95th training percentile (0 = the mouth ignores the expression).

`--ablations` adds `full_adv` (the same budget with the conditional adversarial terms after a warm-up) and
`full_frozen` (the full model with its conditioning frozen to the first test frame: what the motion is worth).

Target (issue 10, preview preset, 2 CPU cores, <= 40 min per video): `full` beats the three others on PSNR, LPIPS and
mouth L1, and `cnn` beats `mean_frame` on PSNR.

    python benchmarks/bench_quality.py --video ../shared/testdata/videos/d0.mp4 [--video ...] [--preset preview|seed]
        [--iterations N] [--json OUT] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neural_renderer.metrics.config import MetricsConfig
from neural_renderer.metrics.evaluate import pixel_metrics
from neural_renderer.renderer.baselines import jaw_sweep, mean_frame, mouth_l1, nearest_frames
from neural_renderer.renderer.config import resolve_renderer_config
from neural_renderer.renderer.data import load_tracking
from neural_renderer.renderer.render import PortraitRenderer
from neural_renderer.sections import ModelsConfig
from neural_renderer.stages import train_renderer
from neural_renderer.stages.pipeline import PreprocessModels, preprocess

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
METHODS = ("full", "cnn", "mean_frame", "nearest_frame")
# --ablations: the same budget with the adversarial terms on (conditional discriminator, after a warm-up of half the
# steps, ramped in over a quarter), and the full model rendered with its conditioning frozen to the first test frame.
TRAINED = {"full": {"model": {"variant": "full"}}, "cnn": {"model": {"variant": "cnn"}}}
ABLATIONS = {"full_adv": {"model": {"variant": "full"}, "train": {"w_adv": 1.0, "w_fm": 10.0, "disc_channels": 32}}}
HIGHER_IS_BETTER = {"psnr", "ssim"}


def score(pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray) -> dict[str, float]:
    """The metrics stage's paired metrics (LPIPS AlexNet, PSNR capped at 100 dB) plus L1 inside the mouth box."""
    return {**pixel_metrics(pred, gt, MetricsConfig(device="cpu")), "mouth_l1": float(mouth_l1(gt, pred, boxes).mean())}


def bench_video(
    video: Path,
    work: Path,
    models: PreprocessModels,
    preset: str,
    iterations: int | None,
    crop: int,
    ablations: bool,
    variants: list[str],
    reuse: bool = False,
) -> dict:
    t0 = time.perf_counter()
    tracking = work / video.stem / "tracking.h5"
    if not (reuse and tracking.is_file()):
        tracking = preprocess(video, work / video.stem, models, {"crop": {"resolution": crop}})
    row: dict = {"video": video.stem, "preprocess_s": time.perf_counter() - t0, "methods": {}}
    data = renderer = None
    trained = {k: v for k, v in TRAINED.items() if k in variants}
    for variant, overrides in {**trained, **(ABLATIONS if ablations else {})}.items():
        cfg: dict = {
            "preset": preset,
            "model": dict(overrides["model"]),
            "train": {"progress": False, **overrides.get("train", {})},
        }
        if iterations:
            cfg["train"]["iterations"] = iterations
        if "w_adv" in cfg["train"]:
            n = cfg["train"].get("iterations") or resolve_renderer_config(cfg)[0].train.iterations
            cfg["train"].update(adv_warmup=n // 2, adv_ramp=n // 4)
        model = work / video.stem / f"renderer_{variant}" / "model.pt"
        t1 = time.perf_counter()
        result = train_renderer.run(tracking, model, cfg=cfg)
        train_s = time.perf_counter() - t1
        renderer = PortraitRenderer(model, "auto")
        data = load_tracking(
            tracking, renderer.cfg.train.train_frames, renderer.cfg.train.test_frames, 1, renderer.resolution
        )
        idx = data.test_idx
        pred = renderer.render_sequence(data.pose[idx], data.gaze_rad[idx], data.expression[idx])
        row["methods"][variant] = {
            **score(pred, data.frames[idx], data.mouth[idx]),
            "jaw_sweep": jaw_sweep(renderer, data),
            "train_s": train_s,
            "iterations": result.iteration,
            "preset": result.preset.name,
        }
        if variant == "full" and ablations:
            full = (renderer, data)
    idx = data.test_idx
    if ablations:
        renderer, data = full
        first = np.full(len(idx), idx[0])
        frozen = renderer.render_sequence(data.pose[first], data.gaze_rad[first], data.expression[first])
        row["methods"]["full_frozen"] = score(frozen, data.frames[idx], data.mouth[idx])
    gt, boxes = data.frames[idx], data.mouth[idx]
    row["methods"]["mean_frame"] = score(mean_frame(data, len(idx)), gt, boxes)
    row["methods"]["nearest_frame"] = score(data.frames[nearest_frames(data, renderer.norm)], gt, boxes)
    row.update(
        resolution=data.resolution, n_train=len(data.train_idx), n_test=len(idx), targets=check_targets(row["methods"])
    )
    return row


def better(metric: str, a: float, b: float) -> bool:
    return a > b if metric in HIGHER_IS_BETTER else a < b


def check_targets(m: dict[str, dict[str, float]]) -> dict[str, bool]:
    """Issue 10's targets, for the methods that ran."""
    out = {
        f"full beats {o} on {k}": better(k, m["full"][k], m[o][k])
        for o in METHODS[1:]
        if o in m
        for k in ("psnr", "lpips", "mouth_l1")
    }
    if "cnn" in m:
        out["cnn beats mean_frame on psnr"] = better("psnr", m["cnn"]["psnr"], m["mean_frame"]["psnr"])
    return out


def print_row(row: dict) -> None:
    print(
        f"\n{row['video']}: {row['n_train']} training / {row['n_test']} test frames at {row['resolution']} px",
        flush=True,
    )
    print(
        f"{'method':>14} {'L1':>7} {'PSNR':>6} {'SSIM':>6} {'LPIPS':>6} {'mouth L1':>9} {'jaw sweep':>10} {'train':>8}"
    )
    for name in row["methods"]:
        m = row["methods"][name]
        jaw = f"{m['jaw_sweep']:.4f}" if m.get("jaw_sweep") is not None else "-"
        train = f"{m['train_s'] / 60:.1f} min" if "train_s" in m else "-"
        print(
            f"{name:>14} {m['l1']:7.4f} {m['psnr']:6.2f} {m['ssim']:6.3f} {m['lpips']:6.3f} "
            f"{m['mouth_l1']:9.4f} {jaw:>10} {train:>8}"
        )
    failed = [k for k, ok in row["targets"].items() if not ok]
    print("targets: all met" if not failed else f"targets missed: {', '.join(failed)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, action="append", required=True, help="a raw video (repeat for several)")
    parser.add_argument("--preset", choices=("preview", "seed"), default="preview")
    parser.add_argument("--iterations", type=int, default=None, help="override the preset's iterations")
    parser.add_argument("--crop", type=int, default=512, choices=(256, 512, 1024))
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "ict_face_light_face.npz")
    parser.add_argument("--landmarker", type=Path, default=SHARED / "models" / "face_landmarker.task")
    parser.add_argument("--variants", default="full,cnn", help="renderers to train (full is needed; default: full,cnn)")
    parser.add_argument(
        "--ablations", action="store_true", help="also train full_adv and render full_frozen (see ABLATIONS)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--work", type=Path, default=None, help="keep the stage files and models here")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument(
        "--reuse-tracking", action="store_true", help="keep a tracking.h5 already in --work (and trained models)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        models = PreprocessModels(
            args.landmarker, args.model, work / "correspondence.npz", ModelsConfig().morphable_model_kind
        )
        for video in args.video:
            rows.append(
                bench_video(
                    video,
                    work,
                    models,
                    args.preset,
                    args.iterations,
                    args.crop,
                    args.ablations,
                    args.variants.split(","),
                    args.reuse_tracking,
                )
            )
            print_row(rows[-1])
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
