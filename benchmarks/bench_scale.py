"""Preprocessing and the renderer's frame reader on long videos: per-stage seconds, frames/s and peak memory, and
what that makes at the paper's sizes.

    python benchmarks/bench_scale.py [--frames 1000 [5000 ...]] [--video ../shared/testdata/videos/d6.mp4]
                                     [--resolution 512] [--workdir /tmp/bench_scale] [--threads 2]

For each N, the shared clip is looped to N frames (re-encoded with the shipped ffmpeg, libx264 ultrafast, so the
timeline has no seams the ingest stage would call damage), then the real stage runners run one after another, each
in a fresh process (`spawn`, so each peak RSS is that stage's own: VmHWM): ingest, track, crop, fit, gaze, assemble, qc
(correspondence once, outside the table: it does not depend on the video). Then the renderer's frame cache is built
from the tracking.h5 and its reader is timed (benchmarks/bench_frame_reader.py's phases: batches of 16 random
training frames with the next batch read ahead, as training streams them).

Prints per stage and N: seconds, frames/s, peak RSS (MB); tracking.h5 bytes per frame; the reader's frames/s. Then
extrapolates to the paper's sizes (5,513 frames at 512², 18,138 at 256², 10,934 at 1024²): seconds linearly in
frames; memory linearly between the two largest N measured (with one N: not extrapolated); tracking.h5 and the
frame cache by bytes per frame scaled by the pixel count.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

from bench_frame_reader import peak_rss_mb  # this process's VmHWM (one definition, beside the script)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PAPER = ((5513, 512), (18138, 256), (10934, 1024))  # (frames, resolution) of the seed paper's identities
STAGES = ("ingest", "track", "crop", "fit", "gaze", "assemble", "qc")


def run_stage(stage: str, video: str, out: str, resolution: int, threads: int, queue) -> None:
    """One stage, as the rule runs it (the stage runner), in this fresh process; puts (seconds, peak RSS MB)."""
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    from neural_renderer.stages import assemble, correspondence, crop, fit, gaze, ingest, qc, track

    o, model = Path(out), SHARED / "models" / "ict_face_light_face.npz"
    landmarker = SHARED / "models" / "face_landmarker.task"
    t0 = time.perf_counter()
    if stage == "correspondence":
        correspondence.run(model, landmarker, o / "correspondence.npz")
    elif stage == "ingest":
        ingest.run(video, o / "probe.json", o / "audio.wav")
    elif stage == "track":
        track.run(video, o / "probe.json", landmarker, o / "track.h5", video=Path(video).stem, cfg={})
    elif stage == "crop":
        crop.run(o / "track.h5", o / "crop.h5", cfg={"resolution": resolution})
    elif stage == "fit":
        fit.run(
            o / "crop.h5", o / "track.h5", model, o.parent / "correspondence.npz", o / "fit.h5", cfg={"device": "cpu"}
        )
    elif stage == "gaze":
        gaze.run(o / "crop.h5", o / "fit.h5", model, o / "gaze.h5", cfg={}, track_h5=o / "track.h5")
    elif stage == "assemble":
        files = {s: o / f"{s}.h5" for s in ("track", "crop", "fit", "gaze")}
        assemble.run(video, o / "probe.json", files, o / "tracking.h5")
    elif stage == "qc":
        qc.run(o / "tracking.h5", model, o / "qc_sheet.png", o / "qc_stats.json", cfg={})
    queue.put((time.perf_counter() - t0, peak_rss_mb()))


def in_fresh_process(stage: str, video: Path, out: Path, resolution: int, threads: int) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_stage, args=(stage, str(video), str(out), resolution, threads, queue))
    proc.start()
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"{stage} failed ({proc.exitcode}) on {video}")
    return queue.get()


def loop_clip(src: Path, dst: Path, frames: int) -> None:
    from neural_renderer.video.ffmpeg_exe import resolve_ffmpeg

    cmd = [resolve_ffmpeg(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-frames:v", str(frames)]
    cmd += ["-an", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(dst)]
    subprocess.run(cmd, check=True)


def reader(tracking: Path, work: Path, resolution: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_frame_reader import phase_cache, phase_reader

    cache = phase_cache(tracking, work, resolution)
    read = phase_reader(tracking, work, resolution, batch=16, steps=200, cold=False)
    return {"cache_s": cache["seconds"], "reader_fps": read["frames_per_s"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, nargs="+", default=[1000])
    p.add_argument("--video", type=Path, default=SHARED / "testdata" / "videos" / "d6.mp4")
    p.add_argument("--resolution", type=int, default=512, help="crop resolution (and the renderer's)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/bench_scale"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    args.workdir.mkdir(parents=True, exist_ok=True)
    in_fresh_process("correspondence", args.video, args.workdir, args.resolution, args.threads)
    results = {}
    for n in args.frames:
        out = args.workdir / f"n{n}"
        out.mkdir(parents=True, exist_ok=True)
        video = out / f"loop{n}.mp4"
        loop_clip(args.video, video, n)
        row = {}
        for stage in STAGES:
            row[stage] = in_fresh_process(stage, video, out, args.resolution, args.threads)
            print(f"  {stage} at {n} frames: {row[stage][0]:.1f} s, peak RSS {row[stage][1]:.0f} MB", flush=True)
        row["bytes_per_frame"] = (out / "tracking.h5").stat().st_size / n
        row.update(reader(out / "tracking.h5", out / "renderer", args.resolution))
        results[n] = row
        for f in (out / "renderer").glob("frames-*.npy"):
            f.unlink()
    print(f"{args.video.name} looped; crop {args.resolution} px; torch threads {args.threads}")
    print(f"{'stage':10s} {'frames':>7s} {'seconds':>8s} {'frames/s':>9s} {'peak RSS MB':>12s}")
    for n, row in results.items():
        for stage in STAGES:
            s, rss = row[stage]
            print(f"{stage:10s} {n:7d} {s:8.1f} {n / s:9.1f} {rss:12.0f}")
        total = sum(row[stage][0] for stage in STAGES)
        print(f"{'total':10s} {n:7d} {total:8.1f} {n / total:9.1f}")
        print(
            f"tracking.h5: {row['bytes_per_frame'] / 1e3:.0f} kB/frame; renderer frame cache built in "
            f"{row['cache_s']:.1f} s; reader {row['reader_fps']:.0f} frames/s (batch 16, warm page cache)"
        )
    ns = sorted(results)
    print(
        "\nextrapolated to the paper's identities (seconds linear in frames; memory linear between the two largest N)"
    )
    last = results[ns[-1]]
    for frames, res in PAPER:
        secs = sum(last[stage][0] for stage in STAGES) * frames / ns[-1]
        pix = (res / args.resolution) ** 2
        h5_gb, cache_gb = last["bytes_per_frame"] * pix * frames / 1e9, frames * res * res * 3 / 1e9
        line = f"{frames:6d} frames at {res}²: preprocessing ~{secs / 60:.0f} min, tracking.h5 ~{h5_gb:.1f} GB"
        line += f", frame cache {cache_gb:.1f} GB"
        if len(ns) >= 2:
            a, b = results[ns[-2]], results[ns[-1]]
            peaks = {st: a[st][1] + (b[st][1] - a[st][1]) * (frames - ns[-2]) / (ns[-1] - ns[-2]) for st in STAGES}
            worst = max(peaks, key=peaks.get)
            line += f", largest stage peak ~{peaks[worst]:.0f} MB ({worst})"
        print(line)


if __name__ == "__main__":
    main()
