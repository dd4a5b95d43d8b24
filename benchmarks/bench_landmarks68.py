"""How much of the fit's 68-point error against dlib is the landmark embedding's definition (issue 26).

    python benchmarks/bench_landmarks68.py --keep-root DIR --tune d6 [--radius 1.0] [--step 3] [--save NPY]

DIR/{clip}/orig holds the stage files `bench_tracking.py --agreement --keep DIR/{clip}` leaves (probe.json, crop.h5,
fit.h5). For each clip, dlib's 68 points on every step-th valid frame (box from the stored `fit/landmarks_68`, as
`qc` does). Then each of the 68 landmark vertices is re-chosen, on the tuning clip only, as the vertex within
`radius` (model units, cm for ICT) of ICT's whose projection under the stored fit is closest to dlib's point on
average; the fits themselves are not changed. Printed: inner-51 and jaw-17 NME of ICT's embedding and of the
re-chosen one on every clip (the tuning clip marked; the others are held out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tracking import SHARED, crop_frames_at  # noqa: E402


def main() -> None:
    from neural_renderer.fitting import project_model_points
    from neural_renderer.metrics.identity import dlib_68_predictor
    from neural_renderer.morphable import load_morphable_model
    from neural_renderer.qc import JAW_17, dlib_box, dlib_landmarks, nme
    from neural_renderer.storage import read_stage

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep-root", type=Path, required=True)
    ap.add_argument("--tune", required=True, help="the clip the embedding is re-chosen on")
    ap.add_argument("--clips", nargs="+", default=["d0", "d6", "d12", "d18"])
    ap.add_argument("--radius", type=float, default=1.0)
    ap.add_argument("--step", type=int, default=3)
    ap.add_argument("--model", type=Path, default=SHARED / "models" / "ict_face_light_face.npz")
    ap.add_argument("--save", type=Path, default=None, help="write the re-chosen 68 vertex indices here (.npy)")
    args = ap.parse_args()

    model = load_morphable_model(args.model)
    predictor = dlib_68_predictor()
    data = {}
    for clip in args.clips:
        work = args.keep_root / clip / "orig"
        fit = read_stage(work / "fit.h5", "fit")
        index = np.flatnonzero(fit["valid"])[:: args.step]
        frames = dict(crop_frames_at(SHARED / "testdata" / "videos" / f"{clip}.mp4", work, index))
        fit68 = fit["landmarks_68"]
        dlib68 = dlib_landmarks([frames[i] for i in index], [dlib_box(fit68[i]) for i in index], predictor)
        data[clip] = (fit, index, dlib68)

    def project(clip: str, vertices: np.ndarray) -> np.ndarray:
        fit, index, _ = data[clip]
        return project_model_points(
            model,
            fit["identity"],
            fit["expression"][index],
            fit["rotation"][index],
            fit["translation"][index],
            fit["intrinsics"],
            vertices,
        )

    ict = model.landmarks_68
    _, _, ref = data[args.tune]
    iod = np.linalg.norm(ref[:, 36] - ref[:, 45], axis=1)
    chosen = ict.copy()
    for k, v in enumerate(ict):
        near = np.flatnonzero(np.linalg.norm(model.neutral - model.neutral[v], axis=1) < args.radius)
        err = (np.linalg.norm(project(args.tune, near) - ref[:, None, k], axis=2) / iod[:, None]).mean(axis=0)
        chosen[k] = near[err.argmin()]
    shift = np.linalg.norm(model.neutral[chosen] - model.neutral[ict], axis=1)
    print(
        f"re-chosen on {args.tune} within {args.radius}: {int((chosen != ict).sum())} of 68 moved, {shift.mean():.2f} "
        "model units on average"
    )
    print("| clip | frames | inner-51 NME: ICT's embedding -> re-chosen | jaw-17 NME: ICT's -> re-chosen |")
    print("|---|---|---|---|")
    for clip in args.clips:
        _, index, d68 = data[clip]
        a, b = project(clip, ict), project(clip, chosen)
        mark = " (tuned on it)" if clip == args.tune else ""
        print(
            f"| {clip}{mark} | {len(index)} | {nme(a, d68).mean():.4f} -> {nme(b, d68).mean():.4f} | "
            f"{nme(a, d68, JAW_17).mean():.4f} -> {nme(b, d68, JAW_17).mean():.4f} |"
        )
    if args.save:
        np.save(args.save, chosen)
        print(f"wrote {args.save}: {chosen.tolist()}")


if __name__ == "__main__":
    main()
