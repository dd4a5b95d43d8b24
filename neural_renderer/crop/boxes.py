"""Square crop boxes from landmarks, the pixel crop itself, and the crop <-> source coordinate maps.

A box is (cx, cy, side) in source pixels (continuous coordinates, origin at the top-left corner of the top-left
pixel, so pixel centres sit at +0.5). A crop of resolution R maps source point p to crop point
(p - (c - side / 2)) * R / side; z is scaled by the same factor so it stays in the x/y pixel scale.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from neural_renderer.crop.config import CropConfig
from neural_renderer.crop.smoothing import interpolate_invalid, one_euro_filter, savgol_smooth
from neural_renderer.errors import PipelineInputError

N_MESH = 468  # the face mesh; the 10 iris points add nothing to the extent of the face
PAD_MODES = {"black": cv2.BORDER_CONSTANT, "edge": cv2.BORDER_REPLICATE}


def raw_face_boxes(landmarks: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (cx, cy, face_size) of the mesh's bounding box, NaN where invalid; and the effective valid mask
    (frames whose landmarks are not all finite count as invalid)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1] < N_MESH or landmarks.shape[2] < 2:
        raise ValueError(f"landmarks must be (T, >={N_MESH}, 2|3), got {landmarks.shape}")
    valid = np.asarray(valid, dtype=bool) & np.isfinite(landmarks[:, :N_MESH, :2]).all(axis=(1, 2))
    boxes = np.full((len(valid), 3), np.nan)
    xy = landmarks[valid, :N_MESH, :2]
    lo, hi = xy.min(axis=1), xy.max(axis=1)
    boxes[valid, :2] = (lo + hi) / 2
    boxes[valid, 2] = (hi - lo).max(axis=1)
    return boxes, valid


def compute_crop_boxes(
    landmarks: np.ndarray,
    valid: np.ndarray,
    image_size: tuple[int, int],
    cfg: CropConfig,
    *,
    fps: float = 30.0,
    source: str | Path | None = None,
) -> np.ndarray:
    """(T, 3) float64 boxes (cx, cy, side) in source pixels: face box * (1 + margin), gaps interpolated, smoothed.

    `fps` only matters for 'one_euro' (cutoffs in Hz). `image_size` (W, H) is accepted for the API's sake and
    used only to validate; boxes may extend past the image (crop_frame pads). All frames invalid ->
    PipelineInputError naming `source`.
    """
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid image size {image_size}")
    raw, ok = raw_face_boxes(landmarks, valid)
    if not ok.any():
        raise PipelineInputError(source, f"no valid face landmarks in any of the {len(ok)} frames: cannot place a crop")
    boxes = interpolate_invalid(raw, ok)
    boxes[:, 2] *= 1.0 + cfg.margin
    if cfg.smoothing == "savgol":
        boxes = savgol_smooth(boxes, cfg.savgol_window, cfg.savgol_polyorder)
    elif cfg.smoothing == "one_euro":
        scale = float(np.median(boxes[:, 2]))  # unit = one box side, so beta is resolution independent
        boxes = (
            one_euro_filter(boxes / scale, fps, cfg.one_euro_min_cutoff, cfg.one_euro_beta, cfg.one_euro_d_cutoff)
            * scale
        )
    boxes[:, 1] += cfg.vertical_offset * boxes[:, 2]
    boxes[:, 2] = np.maximum(boxes[:, 2], 1.0)  # a degenerate (single-point) face must not give a zero-size crop
    return boxes


def _scale_offset(boxes: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable (scale, x0, y0) for landmarks (..., N, 3) and boxes (..., 3)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    side = boxes[..., 2, None]
    scale = resolution / side
    return scale, boxes[..., 0, None] - side / 2, boxes[..., 1, None] - side / 2


def landmarks_to_crop(landmarks: np.ndarray, boxes: np.ndarray, resolution: int) -> np.ndarray:
    """Source-pixel landmarks (..., N, 2|3) -> crop pixels for boxes (..., 3); z scaled like x, y. Same shape."""
    scale, x0, y0 = _scale_offset(boxes, resolution)
    out = np.array(landmarks, dtype=np.float64, copy=True)
    out[..., 0] = (out[..., 0] - x0) * scale
    out[..., 1] = (out[..., 1] - y0) * scale
    if out.shape[-1] > 2:
        out[..., 2] *= scale
    return out


def crop_to_source(points: np.ndarray, boxes: np.ndarray, resolution: int) -> np.ndarray:
    """Inverse of `landmarks_to_crop`: crop pixels (..., N, 2|3) -> source pixels."""
    scale, x0, y0 = _scale_offset(boxes, resolution)
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] = out[..., 0] / scale + x0
    out[..., 1] = out[..., 1] / scale + y0
    if out.shape[-1] > 2:
        out[..., 2] /= scale
    return out


def crop_frame(frame: np.ndarray, box: np.ndarray, resolution: int, pad: str = "black") -> np.ndarray:
    """Cut the square `box` out of `frame` and resample it to (resolution, resolution, 3), exactly consistent with
    `landmarks_to_crop` (sub-pixel boxes, no rounding). Outside the frame: black, or the edge pixels (pad='edge').

    Upscaling: bilinear. Downscaling: the region is first shrunk with INTER_AREA (area averaging, no aliasing) to about
    the output scale, then resampled bilinearly with the correspondingly adjusted transform.
    """
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {sorted(PAD_MODES)}, got {pad!r}")
    cx, cy, side = (float(v) for v in box)
    if not (np.isfinite([cx, cy, side]).all() and side > 0):
        raise ValueError(f"invalid crop box {box}")
    height, width = frame.shape[:2]
    scale = resolution / side  # output pixels per source pixel
    x0, y0 = cx - side / 2, cy - side / 2
    src = frame
    # Source continuous coordinate of the region's origin and its per-axis shrink factors (1 = not shrunk).
    ox, oy, kx, ky = 0.0, 0.0, 1.0, 1.0
    if scale < 1.0:
        # Region = box bounds (+1 px for the bilinear footprint), clipped to the frame.
        rx0, ry0 = max(int(np.floor(x0)) - 1, 0), max(int(np.floor(y0)) - 1, 0)
        rx1, ry1 = min(int(np.ceil(x0 + side)) + 1, width), min(int(np.ceil(y0 + side)) + 1, height)
        if rx1 > rx0 and ry1 > ry0:
            region = frame[ry0:ry1, rx0:rx1]
            new_w = max(1, int(round((rx1 - rx0) * scale)))
            new_h = max(1, int(round((ry1 - ry0) * scale)))
            src = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
            ox, oy = float(rx0), float(ry0)
            kx, ky = (rx1 - rx0) / new_w, (ry1 - ry0) / new_h
    # Output pixel index j has continuous coordinate j + 0.5 -> source x = x0 + (j + 0.5) / scale
    # -> index in `src` = (x - ox) / kx - 0.5. Affine in j: a * j + b.
    ax, ay = 1.0 / (scale * kx), 1.0 / (scale * ky)
    bx = (x0 + 0.5 / scale - ox) / kx - 0.5
    by = (y0 + 0.5 / scale - oy) / ky - 0.5
    matrix = np.array([[ax, 0.0, bx], [0.0, ay, by]], dtype=np.float64)
    return cv2.warpAffine(
        src,
        matrix,
        (resolution, resolution),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=PAD_MODES[pad],
        borderValue=(0, 0, 0),
    )
