"""qc: contact sheet and tracking statistics from `tracking.h5` (the file users consume, so QC checks it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from neural_renderer.config import build_dataclass
from neural_renderer.fitting import project_model_points
from neural_renderer.morphable import MEDIAPIPE_68, load_morphable_model
from neural_renderer.qc import (
    QcConfig,
    contact_sheet,
    dlib_box,
    dlib_landmarks,
    draw_comparison_tile,
    draw_tile,
    independent_check,
    nme,
    sheet_indices,
    tracking_stats,
)
from neural_renderer.storage import atomic_path, open_h5, read_stage
from neural_renderer.tracking import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER


def ingest_stats(track_attrs, timestamps_s) -> dict[str, Any]:
    """What ingest did to the frame timeline: resampling, frames dropped for damage (`partial`), faces seen."""
    damage = str(track_attrs.get("damage", ""))
    return {
        "timeline": str(track_attrs.get("timeline", "source")),
        "partial": bool(damage),
        "damage": damage,
        "duration_s": float(timestamps_s[-1] - timestamps_s[0]) if len(timestamps_s) else 0.0,
        "n_faces_max": int(track_attrs.get("n_faces_max", 1)),
    }


def check_against_dlib(
    tracking_h5: str | Path, crop: dict, fit: dict, cfg: QcConfig
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The independent check (``neural_renderer.qc``): its ``qc/stats.json`` entry and the contact sheet's tiles of
    the worst checked frames (the fit's 68 points red, dlib's blue)."""
    if cfg.dlib_frame_step == 0:
        return {"skipped": "qc.dlib_frame_step is 0"}, []
    if "landmarks_68" not in fit:
        return {"skipped": "the morphable model has no 68-point landmark embedding (no fit/landmarks_68)"}, []
    from neural_renderer.metrics.identity import dlib_68_predictor

    fit68 = fit["landmarks_68"]
    index = np.flatnonzero(crop["valid"] & fit["valid"])[:: cfg.dlib_frame_step]
    with open_h5(tracking_h5) as f:
        frames = [f["frames"][t] for t in index]  # one chunk each
    dlib68 = dlib_landmarks(frames, [dlib_box(fit68[t]) for t in index], dlib_68_predictor())
    mediapipe68 = crop["landmarks"][index][:, list(MEDIAPIPE_68), :2]
    stats = independent_check(index, fit68[index], dlib68, mediapipe68, cfg.nme_threshold)
    stats["frame_step"] = cfg.dlib_frame_step
    per_frame = nme(fit68[index], dlib68)
    tiles = [
        draw_comparison_tile(
            frames[k],
            fit68[index[k]],
            dlib68[k],
            f"#{index[k]} NME {per_frame[k]:.3f}" + (" FLAGGED" if per_frame[k] > cfg.nme_threshold else ""),
            cfg,
        )
        for k in np.argsort(-per_frame)[: cfg.worst_frames]
    ]
    return stats, tiles


def run(
    tracking_h5: str | Path,
    model_path: str | Path,
    sheet_png: str | Path,
    stats_json: str | Path,
    *,
    cfg: dict[str, Any],
    kind: str = "auto",
) -> dict:
    qc_cfg = build_dataclass(QcConfig, cfg)
    crop = read_stage(tracking_h5, "crop", group="crop")
    fit = read_stage(tracking_h5, "fit", group="fit")
    gaze = read_stage(tracking_h5, "gaze", group="gaze")
    with open_h5(tracking_h5) as f:
        resolution = int(f.attrs["resolution"])
        index = sheet_indices(len(crop["valid"]), qc_cfg.n_frames, show=gaze["eyes_closed"])
        frames = f["frames"][index]  # only the sheet's frames are read: one chunk each
        ingest = ingest_stats(f["track"].attrs, f["timestamps_s"][()])
    stats = tracking_stats(
        crop["valid"],
        crop["landmarks"],
        crop["boxes"],
        fit["reprojection_error_px"],
        resolution,
        gaze_valid=gaze["valid"],
        eyes_closed=gaze["eyes_closed"],
    )
    stats.update(ingest)
    model = load_morphable_model(model_path, kind=kind)
    model_points = project_model_points(
        model,
        fit["identity"],
        fit["expression"][index],
        fit["rotation"][index],
        fit["translation"][index],
        fit["intrinsics"],
        vertex_indices=fit["correspondence_vertex"],
    )
    tiles = []
    for k, t in enumerate(index):
        ok = bool(crop["valid"][t])
        closed = bool(gaze["eyes_closed"][t])
        eyes = crop["landmarks"][t, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER], :2] if ok else None
        tiles.append(
            draw_tile(
                frames[k],
                crop["landmarks"][t] if ok else None,
                model_points[k],
                eyes,
                gaze["eye_vectors"][t] if ok else None,
                f"#{t}" + ("" if ok else " no face") + (" eyes closed" if ok and closed else ""),
                qc_cfg,
                gaze_measured=bool(gaze["valid"][t]),
            )
        )
    stats["independent_check"], worst = check_against_dlib(tracking_h5, crop, fit, qc_cfg)
    if worst:  # a row of their own: pad the evenly spaced frames to full rows
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % qc_cfg.columns) + worst
    sheet = contact_sheet(tiles, qc_cfg.columns)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding of the contact sheet failed")
    with atomic_path(sheet_png) as tmp:
        tmp.write_bytes(png.tobytes())
    with atomic_path(stats_json) as tmp:
        tmp.write_text(json.dumps(stats, indent=2))
    return stats
