"""Cross-identity reenactment, files in and out: driver + target tracking.h5 and the target's renderer ->
side-by-side mp4 (driver crop | reenacted, with the driver's audio) and the frames HDF5 (schema `rendered`)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from neural_renderer.config import to_json
from neural_renderer.errors import PipelineInputError
from neural_renderer.outputs import CROSS
from neural_renderer.reenact.config import ReenactConfig
from neural_renderer.reenact.transfer import Transferred, check_expression_names, motion_stats, transfer_motion
from neural_renderer.renderer.render import PortraitRenderer
from neural_renderer.storage import frame_reader, read_driving_motion, write_rendered
from neural_renderer.video.mp4 import write_mp4

log = logging.getLogger(__name__)


def render_params(renderer: PortraitRenderer, params: Transferred, batch_size: int = 8) -> np.ndarray:
    """Transferred parameters -> (T, R, R, 3) uint8 frames from the renderer."""
    return renderer.render_motion(params.expression, params.rotation, params.translation, params.gaze_deg, batch_size)


def reenact(
    driver_tracking: str | Path,
    target_tracking: str | Path,
    target_model: str | Path,
    out_mp4: str | Path,
    out_h5: str | Path,
    *,
    cfg: ReenactConfig,
    driver: str,
    target: str,
    ffmpeg: str,
    audio: Path | None = None,
) -> np.ndarray:
    """Render the driver's motion with the target's renderer; returns the reenacted frames (T, R, R, 3).

    Every input is checked before anything is written, so a bad input leaves no partial output.
    """
    drv_motion = read_driving_motion(driver_tracking)
    tgt_motion = read_driving_motion(target_tracking)
    reason = check_expression_names(drv_motion.expression_names, tgt_motion.expression_names)
    if reason:
        raise PipelineInputError(driver_tracking, f"cannot drive {target_tracking}: {reason}")
    if not Path(target_model).is_file():
        raise PipelineInputError(target_model, "target renderer model not found (train it first)")
    renderer = PortraitRenderer(target_model, cfg.device, cfg.test_latent)
    model_ke = renderer.n_expression
    if model_ke != len(tgt_motion.expression_names):
        raise PipelineInputError(
            target_model,
            f"model takes {model_ke} expression coefficients, {target_tracking} has {len(tgt_motion.expression_names)}",
        )
    n = len(drv_motion) if cfg.max_frames == 0 else min(cfg.max_frames, len(drv_motion))
    # Reference poses over the whole driver video (not just the rendered part) and the whole target video.
    drv_stats = motion_stats(drv_motion, cfg.neutral_percentile)
    tgt_stats = motion_stats(tgt_motion, cfg.neutral_percentile)
    params = transfer_motion(
        drv_motion.head(n),
        drv_stats,
        tgt_stats,
        expression=cfg.expression,
        pose=cfg.pose,
        gaze=cfg.gaze,
        smoothing_sigma=cfg.smoothing_sigma,
    )
    frames = render_params(renderer, params, cfg.batch_size)
    r = renderer.resolution
    fps = drv_motion.fps
    with contextlib.ExitStack() as stack:
        if cfg.side_by_side:  # the driver's frames one at a time, as the encoder asks (not the whole driver video)
            driver_frame = stack.enter_context(frame_reader(driver_tracking, r))
            frame_of, width = (lambda i: np.concatenate([driver_frame(i), frames[i]], axis=1)), 2 * r
        else:
            frame_of, width = (lambda i: frames[i]), r
        write_rendered(
            out_h5,
            frames,
            np.arange(n),
            kind=CROSS.name,
            video=f"{driver}_to_{target}",
            source_path=driver_tracking,
            stage_config=cfg.to_dict(),
            fps=fps,
            driver=driver,
            target=target,
            target_model=str(target_model),
            target_tracking=str(target_tracking),
        )
        try:
            # the driver's sound from the time of its frame 0 (its file clock, which `-ss` seeks on), not from 0
            start_s = float(drv_motion.timestamps_s[0])
            write_mp4(
                out_mp4, n, frame_of, width, r, fps, ffmpeg=ffmpeg, crf=cfg.crf, audio=audio, audio_start_s=start_s
            )
        except BaseException:
            Path(out_h5).unlink(missing_ok=True)  # no half-finished pair of outputs
            raise
    log.info("reenacted %d frames of %s with %s's renderer (%s)", n, driver, target, to_json(cfg))
    return frames
