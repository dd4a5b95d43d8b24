"""One rendered output -> one row of metrics.

Which reference each metric uses depends on the kind of output (neural_renderer.outputs describes each kind):
- self (test frames re-rendered from their own tracked parameters): pixel metrics, LPIPS, CSIM and the motion
  distances against the same real frames; FID and FVD against the set of real test frames.
- cross (driver's motion on the target's renderer): FID, FVD and CSIM against the target's real test frames (CSIM: each
  generated frame against the target's mean real embedding); expression, pose and gaze distance against the driving
  frames. Pose and gaze are transferred relative to each identity's mean, so both sequences are compared after
  removing their own mean (the target is meant to keep its own mean pose).
- audio (no driving frames): FID, FVD and CSIM against the target's real test frames.
A metric that cannot be computed (e.g. FVD with fewer frames than one clip) is null with the reason in `notes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from neural_renderer.metrics.config import MetricsConfig
from neural_renderer.outputs import ALL_METRICS, DRIVING, MOTION_METRICS, OutputKind
from neural_renderer.storage.motion import motion_from_features

LOWER_IS_BETTER = {
    "l1": True,
    "psnr": False,
    "ssim": False,
    "lpips": True,
    "fid": True,
    "fvd": True,
    "csim": False,
    "expression_distance": True,
    "pose_distance_deg": True,
    "gaze_distance_deg": True,
}
METRICS = tuple(LOWER_IS_BETTER)  # table order
assert set(METRICS) == set(ALL_METRICS), "neural_renderer.outputs and the table name the same metrics"


def _mean(values: np.ndarray) -> float | None:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def _centred(feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rotations and gaze relative to the sequence's own mean (over valid frames)."""
    out = dict(feats)
    valid = feats["motion_valid"] & np.isfinite(feats["rotation"]).all((1, 2))
    if valid.any():
        mean = Rotation.from_matrix(feats["rotation"][valid].astype(np.float64)).mean()
        rot = np.nan_to_num(feats["rotation"].astype(np.float64))
        rot[~valid] = np.eye(3)
        centred = (Rotation.from_matrix(rot) * mean.inv()).as_matrix().astype(np.float32)
        centred[~valid] = np.nan  # untracked frames stay missing (they are compared nowhere)
        out["rotation"] = centred
        out["gaze_pitch_yaw_deg"] = feats["gaze_pitch_yaw_deg"] - np.nanmean(feats["gaze_pitch_yaw_deg"][valid], 0)
    return out


def motion_distances(
    generated: dict[str, np.ndarray], driving: dict[str, np.ndarray], relative: bool
) -> dict[str, float | None]:
    from neural_renderer.metrics.motion import expression_distance, gaze_distance_deg, pose_distance_deg

    if relative:
        generated, driving = _centred(generated), _centred(driving)
    a, b = motion_from_features(driving), motion_from_features(generated)
    return {
        "expression_distance": _mean(expression_distance(a, b)),
        "pose_distance_deg": _mean(pose_distance_deg(a, b)),
        "gaze_distance_deg": _mean(gaze_distance_deg(a, b)),
    }


def distribution_metrics(
    generated: dict[str, np.ndarray], real: dict[str, np.ndarray], clip_len: int, notes: dict[str, str]
) -> dict[str, float | None]:
    from neural_renderer.metrics.frechet import fid, fvd

    out: dict[str, float | None] = {"fid": fid(real["inception"], generated["inception"])}
    n_gen, n_real = len(generated["i3d"]), len(real["i3d"])
    if min(n_gen, n_real) >= 2:
        out["fvd"] = fvd(real["i3d"], generated["i3d"])
    else:
        out["fvd"] = None
        notes["fvd"] = f"needs >= 2 clips of {clip_len} frames per side; generated has {n_gen}, real has {n_real}"
    return out


def csim(
    generated: dict[str, np.ndarray], real: dict[str, np.ndarray], paired: bool, notes: dict[str, str]
) -> float | None:
    from neural_renderer.metrics.identity import cosine_similarity

    gen = np.where(generated["identity_valid"][:, None], generated["identity"], np.nan)
    ref = np.where(real["identity_valid"][:, None], real["identity"], np.nan)
    if paired:
        value = _mean(cosine_similarity(gen, ref))
    else:
        if not real["identity_valid"].any():
            notes["csim"] = "no face found in the real target frames"
            return None
        value = _mean(cosine_similarity(gen, np.nanmean(ref, 0)))
    if value is None:
        notes["csim"] = "no face found in the generated frames"
    return value


def pixel_metrics(generated: np.ndarray, real: np.ndarray, cfg: MetricsConfig) -> dict[str, float | None]:
    """Paired metrics at the generated frames' resolution (real frames are area-downsampled to it when larger)."""
    from neural_renderer.metrics.image import l1, psnr, ssim
    from neural_renderer.perceptual.lpips import lpips_frames
    from neural_renderer.renderer.frames import resize_frames

    if real.shape[1:3] != generated.shape[1:3]:  # a renderer trained below the crop resolution (preview preset)
        real = resize_frames(real, generated.shape[1])
    return {
        "l1": _mean(l1(real, generated)),
        "psnr": _mean(np.minimum(psnr(real, generated), 100.0)),  # identical frames: inf -> capped, not dropped
        "ssim": _mean(ssim(real, generated)),
        "lpips": _mean(lpips_frames(real, generated, net=cfg.lpips_net, device=cfg.device, batch_size=cfg.batch_size)),
    }


def evaluate(
    kind: OutputKind,
    generated_frames: np.ndarray,
    generated: dict[str, np.ndarray],
    real_target: dict[str, np.ndarray],
    cfg: MetricsConfig,
    *,
    real_frames: np.ndarray | None = None,
    driving: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Metrics of one output and notes saying why any metric is null.

    `real_frames`: the real frames of the same instants (a paired kind); `driving`: the driving frames' features.
    """
    notes: dict[str, str] = dict(kind.absent)
    values: dict[str, float | None] = dict.fromkeys(METRICS)
    values.update(distribution_metrics(generated, real_target, cfg.fvd_clip_len, notes))
    values["csim"] = csim(generated, real_target, paired=kind.paired, notes=notes)
    if kind.paired:
        if real_frames is None:
            raise ValueError(f"{kind.name} metrics need the real frames")
        values.update(pixel_metrics(generated_frames, real_frames, cfg))
        values.update(motion_distances(generated, real_target, relative=False))
    elif kind.reference is DRIVING:
        if driving is None:
            raise ValueError(f"{kind.name} metrics need the driving frames' features")
        values.update(motion_distances(generated, driving, relative=True))
    for key in kind.absent:
        values[key] = None
    for key in MOTION_METRICS:
        if key not in notes and values[key] is None:
            notes[key] = "no frame where both sequences have a tracked face"
    return values, notes


def metrics_record(
    kind: str,
    target: str,
    driver: str,
    method: str,
    n_frames: int,
    values: dict[str, Any],
    notes: dict[str, str],
    backends: dict[str, str],
) -> dict[str, Any]:
    return {
        "kind": kind,
        "target": target,
        "driver": driver,
        "method": method,
        "n_frames": int(n_frames),
        "metrics": values,
        "notes": notes,
        "backends": backends,
    }
