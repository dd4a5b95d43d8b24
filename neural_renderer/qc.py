"""Tracking quality control: statistics a person can compare across videos, and a contact sheet to look at.

Pure functions over arrays (stats, drawing); `stages/qc.py` reads the files and writes the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

GREEN = (0, 220, 0)
RED = (255, 40, 40)
YELLOW = (255, 230, 0)
GREY = (150, 150, 150)


@dataclass(frozen=True)
class QcConfig:
    n_frames: int = 12  # frames on the contact sheet, evenly spaced
    columns: int = 4
    tile: int = 256  # tile side on the sheet (px)
    gaze_arrow_px: float = 60.0  # arrow length at crop resolution

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.columns < 1 or self.tile < 32:
            raise ValueError(f"qc: n_frames and columns must be >= 1 and tile >= 32, got {self}")


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
