"""The windowed fit (stage 3 in overlapping windows, `fit.window_frames`) against the whole-sequence solve: accuracy,
seams, and the fit stage's peak memory as the video grows.

    python benchmarks/bench_fit_windows.py accuracy --stage-dir DIR [--clips d0 d6 d12 d18] [--frames 3000]
                                                    [--window 1000] [--overlap 100]
    python benchmarks/bench_fit_windows.py memory --stage-dir DIR --clip d6 --frames 1000 10000 [--window 1000]
                                                  [--stages crop fit gaze]

DIR/<clip>/ holds the clip's `crop.h5` and `track.h5` and DIR the `correspondence.npz` (as the workflow writes them;
made here with the stage runners when missing, from ../shared/testdata/videos/<clip>.mp4). A clip is lengthened to
`--frames` by ping-pong looping its tracks (forwards, backwards, ...), so motion stays continuous and a seam of the
windows is the only new discontinuity.

accuracy: per clip, the fit with one window (the whole sequence, the reference) and with `--window/--overlap`.
Prints the largest, 99th percentile and mean per-frame differences (expression, head rotation in degrees,
translation), both reprojection errors, both final costs, and the seam check: the mean frame-to-frame change
(velocity) and second difference (jerk) of expression and rotation on frames within 10 of a window border or
inside an overlap, against the same on all other frames. A seam that jumps shows as a ratio well above 1.

memory: the stage runners (default: fit; also crop and gaze, which read and write the same per-frame arrays) on the
looped tracks, each stage and length in a fresh process; prints seconds, frames/s and peak RSS (VmHWM). gaze without
fit reads DIR/<clip>/fit.h5 looped (made by the fit stage runner first if missing).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from bench_frame_reader import peak_rss_mb  # this process's VmHWM (one definition, beside the script)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODEL = SHARED / "models" / "ict_face_light_face.npz"
LANDMARKER = SHARED / "models" / "face_landmarker.task"
sys.path.insert(0, str(REPO))


def stage_files(stage_dir: Path, clip: str) -> Path:
    """DIR/<clip>/ with crop.h5 and track.h5 (and DIR/correspondence.npz), made with the stage runners if missing."""
    from neural_renderer.stages import correspondence, crop, ingest, track

    out = stage_dir / clip
    corr = stage_dir / "correspondence.npz"
    if not corr.exists():
        correspondence.run(MODEL, LANDMARKER, corr)
    if not (out / "crop.h5").exists():
        out.mkdir(parents=True, exist_ok=True)
        video = SHARED / "testdata" / "videos" / f"{clip}.mp4"
        ingest.run(video, out / "probe.json", out / "audio.wav")
        track.run(video, out / "probe.json", LANDMARKER, out / "track.h5", video=clip, cfg={})
        crop.run(out / "track.h5", out / "crop.h5", cfg={"resolution": 512})
    return out


def ping_pong(n_source: int, n: int) -> np.ndarray:
    """Frame indices 0..k-1, k-2..0, 1.. of a k-frame clip, n of them: a longer clip with continuous motion."""
    if n_source == 1:
        return np.zeros(n, dtype=np.int64)
    period = np.concatenate([np.arange(n_source), np.arange(n_source - 2, 0, -1)])
    return np.resize(period, n)


def looped_inputs(files: Path, n: int | None) -> dict:
    from neural_renderer.storage import read_attrs, read_stage

    crop = read_stage(files / "crop.h5", "crop", names=["landmarks", "valid"])
    track = read_stage(files / "track.h5", "track", names=["blendshapes", "blendshape_names"])
    idx = ping_pong(len(crop["valid"]), n or len(crop["valid"]))
    return {
        "landmarks": crop["landmarks"][idx],
        "valid": crop["valid"][idx],
        "blendshapes": track["blendshapes"][idx],
        "blendshape_names": track["blendshape_names"],
        "resolution": int(read_attrs(files / "crop.h5")["resolution"]),
    }


def fit(inputs: dict, corr_path: Path, cfg) -> tuple:
    from neural_renderer.fitting import fit_tracked_landmarks
    from neural_renderer.morphable import load_correspondence, load_morphable_model

    model = load_morphable_model(MODEL)
    corr = load_correspondence(corr_path, MODEL)
    t0 = time.perf_counter()
    res = fit_tracked_landmarks(
        inputs["landmarks"],
        inputs["valid"],
        model,
        corr,
        inputs["resolution"],
        cfg,
        inputs["blendshapes"],
        inputs["blendshape_names"],
    )
    return res, time.perf_counter() - t0


def rotation_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees) between rotation matrices a and b, per frame."""
    cos = (np.einsum("tij,tij->t", a, b) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def seam_mask(n: int, windows: list[tuple[int, int]], margin: int = 10) -> np.ndarray:
    """Frames within ``margin`` of a window border, or inside an overlap of two windows."""
    mask = np.zeros(n, dtype=bool)
    for k, (start, _) in enumerate(windows):
        if k:
            mask[max(start - margin, 0) : min(windows[k - 1][1] + margin, n)] = True
    return mask


def motion_stats(res, mask: np.ndarray) -> dict[str, float]:
    """Mean |velocity| and |second difference| of expression (coefficient units) and rotation (degrees) on the
    frames of ``mask`` (a difference counts where its middle frame is in the mask)."""
    e = res.expression.astype(np.float64)
    vel_e = np.abs(np.diff(e, axis=0)).mean(axis=1)
    jerk_e = np.abs(np.diff(e, 2, axis=0)).mean(axis=1)
    r = res.rotation.astype(np.float64)
    vel_r = rotation_deg(r[1:], r[:-1])
    aa = np.degrees(res.head_axis_angle.astype(np.float64))
    jerk_r = np.linalg.norm(np.diff(aa, 2, axis=0), axis=1)
    m1, m2 = mask[1:] | mask[:-1], mask[1:-1]
    return {
        "vel_e": float(vel_e[m1].mean()),
        "jerk_e": float(jerk_e[m2].mean()),
        "vel_r": float(vel_r[m1].mean()),
        "jerk_r": float(jerk_r[m2].mean()),
    }


def accuracy(args) -> None:
    from neural_renderer.fitting import FitConfig
    from neural_renderer.fitting.fit import window_bounds

    base = FitConfig(device="cpu", num_threads=args.threads)
    print(f"window {args.window}, overlap {args.overlap}, clips looped (ping-pong) to {args.frames} frames")
    head = "| clip | frames | windows | max / p99 / mean d expr | max / mean d rot ° | max d trans "
    head += "| reproj px whole / win | cost whole / win | seam/rest vel expr | jerk expr | vel rot | jerk rot "
    head += "| s whole / win |"
    print(head)
    print("|" + "---|" * 14)
    for clip in args.clips:
        files = stage_files(args.stage_dir, clip)
        inputs = looped_inputs(files, args.frames)
        n = len(inputs["valid"])
        whole, s_whole = fit(inputs, args.stage_dir / "correspondence.npz", replace(base, window_frames=n + 1))
        cfg = replace(base, window_frames=args.window, window_overlap=args.overlap)
        win, s_win = fit(inputs, args.stage_dir / "correspondence.npz", cfg)
        windows = window_bounds(n, args.window, args.overlap)
        de = np.abs(win.expression - whole.expression).max(axis=1)
        dr = rotation_deg(win.rotation.astype(np.float64), whole.rotation.astype(np.float64))
        dt = np.linalg.norm(win.translation - whole.translation, axis=1)
        mask = seam_mask(n, windows)
        ratio = {}
        for name, res in (("whole", whole), ("win", win)):
            seam, rest = motion_stats(res, mask), motion_stats(res, ~mask)
            ratio[name] = {k: seam[k] / max(rest[k], 1e-12) for k in seam}
        cells = [
            clip,
            f"{n}",
            f"{len(windows)}",
            f"{de.max():.3f} / {np.percentile(de, 99):.3f} / {de.mean():.4f}",
            f"{dr.max():.3f} / {dr.mean():.4f}",
            f"{dt.max():.4f}",
            f"{np.nanmean(whole.reprojection_error_px):.4f} / {np.nanmean(win.reprojection_error_px):.4f}",
            f"{whole.final_cost['total']:.5f} / {win.final_cost['total']:.5f}",
        ]
        for k in ("vel_e", "jerk_e", "vel_r", "jerk_r"):  # windowed seam/rest (whole's seam/rest: same frames)
            cells.append(f"{ratio['win'][k]:.2f} ({ratio['whole'][k]:.2f})")
        cells.append(f"{s_whole:.0f} / {s_win:.0f}")
        print("| " + " | ".join(cells) + " |", flush=True)


def write_looped(files: Path, out: Path, n: int) -> None:
    """crop.h5, track.h5 (and fit.h5 if there) of ``files`` ping-pong looped to n frames (every per-frame dataset;
    attributes kept)."""
    import h5py

    out.mkdir(parents=True, exist_ok=True)
    for name in [f for f in ("crop.h5", "track.h5", "fit.h5") if (files / f).exists()]:
        with h5py.File(files / name, "r") as src, h5py.File(out / name, "w") as dst:
            t = len(src["valid"])
            idx = ping_pong(t, n)
            for key, ds in src.items():
                if ds.shape and ds.shape[0] == t and key != "blendshape_names":
                    dst.create_dataset(key, data=ds[()][idx], chunks=(min(256, n),) + ds.shape[1:], compression="gzip")
                else:
                    src.copy(ds, dst, name=key)
            dst.attrs.update(src.attrs)


def run_stage(stage: str, work: str, corr: str, cfg: dict, threads: int, queue) -> None:
    """One stage runner on the looped files in ``work``, in this fresh process; puts (seconds, peak RSS MB)."""
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    from neural_renderer.stages import crop, fit, gaze

    w = Path(work)
    t0 = time.perf_counter()
    if stage == "crop":
        crop.run(w / "track.h5", w / "crop.h5", cfg={"resolution": 512})
    elif stage == "fit":
        fit.run(w / "crop.h5", w / "track.h5", MODEL, corr, w / "fit.h5", cfg=cfg)
    elif stage == "gaze":
        gaze.run(w / "crop.h5", w / "fit.h5", MODEL, w / "gaze.h5", cfg={}, track_h5=w / "track.h5")
    queue.put((time.perf_counter() - t0, peak_rss_mb()))


def memory(args) -> None:
    files = stage_files(args.stage_dir, args.clip)
    if "gaze" in args.stages and "fit" not in args.stages and not (files / "fit.h5").exists():
        from neural_renderer.stages import fit

        fit.run(
            files / "crop.h5",
            files / "track.h5",
            MODEL,
            args.stage_dir / "correspondence.npz",
            files / "fit.h5",
            cfg={},
        )
    cfg = {"device": "cpu", "window_frames": args.window, "window_overlap": args.overlap}
    print(f"{args.clip} ping-pong looped, fit window {args.window}, overlap {args.overlap}, {args.threads} threads")
    print("| stage | frames | seconds | frames/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    ctx = mp.get_context("spawn")
    for n in args.frames:
        with tempfile.TemporaryDirectory(dir=args.stage_dir) as work:
            write_looped(files, Path(work), n)
            for stage in args.stages:
                queue = ctx.Queue()
                corr = str(args.stage_dir / "correspondence.npz")
                proc = ctx.Process(target=run_stage, args=(stage, work, corr, cfg, args.threads, queue))
                proc.start()
                proc.join()
                if proc.exitcode:
                    raise SystemExit(f"the {stage} stage failed ({proc.exitcode}) at {n} frames")
                seconds, rss = queue.get()
                print(f"| {stage} | {n} | {seconds:.1f} | {n / seconds:.0f} | {rss:.0f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--clips", nargs="+", default=["d0", "d6", "d12", "d18"])
    a.add_argument("--frames", type=int, default=3000)
    m = sub.add_parser("memory")
    m.add_argument("--clip", default="d6")
    m.add_argument("--frames", type=int, nargs="+", default=[1000, 10000])
    m.add_argument("--stages", nargs="+", default=["fit"], choices=["crop", "fit", "gaze"])
    for q in (a, m):
        q.add_argument("--stage-dir", type=Path, default=Path("/tmp/bench_fit_windows"))
        q.add_argument("--window", type=int, default=1000)
        q.add_argument("--overlap", type=int, default=100)
        q.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    args.stage_dir.mkdir(parents=True, exist_ok=True)
    accuracy(args) if args.mode == "accuracy" else memory(args)


if __name__ == "__main__":
    main()
