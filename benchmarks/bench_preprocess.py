"""Benchmark of the real preprocessing stages on the shared test videos: speed and 3DMM fit accuracy.

Runs the same stage runners the Snakemake rules call (ingest, track, crop, correspondence, fit, gaze) on each
video and prints, per video: track+crop frames/s (decode + MediaPipe + crop boxes; the pixel crop is timed inside
`assemble`), fit seconds (and seconds per 1000 frames), and the landmark reprojection error of the fit in pixels
at the chosen crop resolution.

Targets (issue 2): track+crop >= 60 frames/s at 512 on 2 cores; fit of 1000 frames < 30 s on CPU; mean
reprojection error < 2.5 px at 512.

    python benchmarks/bench_preprocess.py [--videos DIR] [--resolution 512] [--threads 2] [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neural_renderer.stages import assemble, correspondence, crop, fit, gaze, ingest, track

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def bench_video(video: Path, work: Path, resolution: int, corr_npz: Path, model: Path, landmarker: Path) -> dict:
    name = video.stem
    out = work / name
    t0 = time.perf_counter()
    record = ingest.run(video, out / "probe.json", out / "audio.wav")
    t1 = time.perf_counter()
    track.run(video, out / "probe.json", landmarker, out / "track.h5", video=name, cfg={})
    t2 = time.perf_counter()
    crop.run(out / "track.h5", out / "crop.h5", cfg={"resolution": resolution})
    t3 = time.perf_counter()
    result = fit.run(out / "crop.h5", out / "track.h5", model, corr_npz, out / "fit.h5", cfg={"device": "cpu"})
    t4 = time.perf_counter()
    gaze.run(out / "crop.h5", out / "fit.h5", model, out / "gaze.h5", cfg={}, track_h5=out / "track.h5")
    t5 = time.perf_counter()
    files = {s: out / f"{s}.h5" for s in ("track", "crop", "fit", "gaze")}
    assemble.run(video, out / "probe.json", files, out / "tracking.h5")
    t6 = time.perf_counter()
    n = int(record["n_frames"])
    err = result.reprojection_error_px[np.isfinite(result.reprojection_error_px)]
    return {
        "video": name,
        "frames": n,
        "detection_rate": float(result.valid.mean()),
        "ingest_s": t1 - t0,
        "track_crop_fps": n / ((t2 - t1) + (t3 - t2)),
        "fit_s": t4 - t3,
        "fit_s_per_1000": (t4 - t3) * 1000 / n,
        "gaze_s": t5 - t4,
        "assemble_fps": n / (t6 - t5),
        "reproj_mean_px": float(err.mean()),
        "reproj_median_px": float(np.median(err)),
        "reproj_p95_px": float(np.percentile(err, 95)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=SHARED / "testdata" / "videos")
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "ict_face_light_face.npz")
    parser.add_argument("--landmarker", type=Path, default=SHARED / "models" / "face_landmarker.task")
    parser.add_argument("--resolution", type=int, default=512, choices=(256, 512, 1024))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CI and the target machine have 2 cores)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corr_npz = work / "correspondence.npz"
        correspondence.run(args.model, args.landmarker, corr_npz)
        for video in sorted(args.videos.glob("*.mp4")):
            row = bench_video(video, work, args.resolution, corr_npz, args.model, args.landmarker)
            rows.append(row)
            print(
                f"{row['video']:>6} {row['frames']:5d} frames  detect {row['detection_rate']:.3f}  "
                f"track+crop {row['track_crop_fps']:6.1f} fps  fit {row['fit_s']:6.2f} s "
                f"({row['fit_s_per_1000']:5.1f} s/1000 frames)  assemble {row['assemble_fps']:6.1f} fps  "
                f"reproj mean {row['reproj_mean_px']:.2f} / median {row['reproj_median_px']:.2f} / "
                f"p95 {row['reproj_p95_px']:.2f} px @ {args.resolution}",
                flush=True,
            )
    total = sum(r["frames"] for r in rows)
    weighted = sum(r["reproj_mean_px"] * r["frames"] for r in rows) / total
    print(f"all videos: {total} frames, frame-weighted mean reprojection error {weighted:.2f} px @ {args.resolution}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_preprocess.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
