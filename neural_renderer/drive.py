"""Drive a trained renderer with any motion file (`portrait render`): the reenact rule's transfer, outside the DAG.

Structure: read the motion (tracking.h5, CSV or NPZ; `motion_file.py`), match its expression basis to the model's by
name, transfer it onto the target with the rule's options (`ReenactConfig`; the target's reference pose comes from
its tracking.h5), cut the frame range, render, write the mp4 (and optionally the `rendered` HDF5) atomically.

Relative transfer needs the target's reference pose, which only its tracking.h5 holds (model.pt stores training
statistics of the network inputs, not the chordal mean rotation or the neutral expression): it is found where the
workflow puts it (`results/{video}/tracking.h5` beside `renderer/model.pt`) or given. Absolute transfer renders the
motion's values as they are, so a CSV authored in the documented units needs nothing else.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError
from neural_renderer.motion_file import align_expression, read_motion_file
from neural_renderer.outputs import CROSS, SELF
from neural_renderer.reenact.config import ReenactConfig
from neural_renderer.reenact.render import render_params
from neural_renderer.reenact.transfer import motion_stats, transfer_motion
from neural_renderer.renderer.render import PortraitRenderer
from neural_renderer.storage import frame_reader, frames_shape, read_driving_motion, write_rendered
from neural_renderer.video.mp4 import write_mp4

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriveResult:
    frames: np.ndarray  # (T, R, R, 3) uint8
    first_frame: int  # index of the first rendered motion frame
    fps: float
    target_tracking: Path | None


def default_target_tracking(model: str | Path) -> Path | None:
    """The workflow's layout: results/{video}/renderer/model.pt -> results/{video}/tracking.h5 (None if absent)."""
    candidate = Path(model).resolve().parent.parent / "tracking.h5"
    return candidate if candidate.is_file() else None


def frame_range(n: int, start: int = 0, stop: int | None = None, max_frames: int = 0) -> tuple[int, int]:
    """[start, stop) of an n-frame motion (negative = from the end, like a Python slice), at most max_frames long."""
    first, last, _ = slice(start, stop).indices(n)
    if max_frames:
        last = min(last, first + max_frames)
    if last <= first:
        end = "" if stop is None else stop
        raise PipelineInputError(None, f"frame range {start}:{end} selects no frame of the motion's {n}")
    return first, last


def drive(
    model: str | Path,
    motion_path: str | Path,
    out_mp4: str | Path,
    *,
    cfg: ReenactConfig,
    ffmpeg: str,
    target_tracking: str | Path | None = None,
    start: int = 0,
    stop: int | None = None,
    fps: float | None = None,
    audio: str | Path | None = None,
    audio_start_s: float | None = None,
    out_h5: str | Path | None = None,
) -> DriveResult:
    """Render `motion_path` with the renderer `model`; every input is checked before anything is written.

    fps: given > the motion's (tracking.h5, NPZ `fps`) > the model's. Audio (any file ffmpeg reads) starts at
    `audio_start_s`, by default at the first rendered frame's time, so a driver video's own audio stays in sync.
    """
    model, motion_path = Path(model), Path(motion_path)
    if not model.is_file():
        raise PipelineInputError(model, "renderer model not found")
    if audio is not None and not Path(audio).is_file():
        raise PipelineInputError(audio, "audio file not found")
    motion = read_motion_file(motion_path)
    renderer = PortraitRenderer(model, cfg.device, cfg.test_latent)
    motion = align_expression(motion, renderer.expression_names, motion_path)
    if motion.expression.shape[1] != renderer.n_expression:
        raise PipelineInputError(
            motion_path,
            f"wrong expression basis: motion has {motion.expression.shape[1]} "
            f"coefficients, the model {renderer.n_expression}",
        )
    relative = [k for k in ("expression", "pose", "gaze") if getattr(cfg, k) == "relative"]
    target = Path(target_tracking) if target_tracking else default_target_tracking(model)
    target_stats = None
    if relative:
        if target is None:
            raise PipelineInputError(
                model,
                f"relative {'/'.join(relative)} transfer needs the target's tracking.h5 "
                "(--target-tracking FILE), or use absolute transfer (--transfer absolute)",
            )
        target_motion = align_expression(read_driving_motion(target), renderer.expression_names, target)
        target_stats = motion_stats(target_motion, cfg.neutral_percentile)
    try:
        first, last = frame_range(len(motion), start, stop, cfg.max_frames)
    except PipelineInputError as exc:
        raise PipelineInputError(motion_path, exc.reason) from None
    rate = float(fps or motion.fps or renderer.fps)
    if rate <= 0:
        raise PipelineInputError(None, f"fps must be > 0, got {rate}")
    if cfg.side_by_side:
        if motion_path.suffix.lower() not in (".h5", ".hdf5"):
            raise PipelineInputError(motion_path, "--side-by-side needs driver frames: only a tracking.h5 has them")
        frames_shape(motion_path)  # has /frames (read one at a time below, as the encoder asks)
    # Reference poses over the whole motion (not only the rendered range), as the reenact rule does; with absolute
    # transfer they are not used.
    drv_stats = motion_stats(motion, cfg.neutral_percentile)
    params = transfer_motion(
        motion.frames(first, last),
        drv_stats,
        target_stats or drv_stats,
        expression=cfg.expression,
        pose=cfg.pose,
        gaze=cfg.gaze,
        smoothing_sigma=cfg.smoothing_sigma,
    )
    frames = render_params(renderer, params, cfg.batch_size)
    r, n = renderer.resolution, last - first
    with contextlib.ExitStack() as stack:
        if cfg.side_by_side:
            driver_frame = stack.enter_context(frame_reader(motion_path, r))
            frame_of, width = (lambda i: np.concatenate([driver_frame(first + i), frames[i]], axis=1)), 2 * r
        else:
            frame_of, width = (lambda i: frames[i]), r
        if out_h5 is not None:
            same = target is not None and target.resolve() == motion_path.resolve()
            write_rendered(
                out_h5,
                frames,
                np.arange(first, last),
                kind=SELF.name if same else CROSS.name,
                video=f"{motion_path.stem}_to_{model.parent.parent.name or model.stem}",
                source_path=motion_path,
                stage_config=cfg.to_dict(),
                fps=rate,
                driver=str(motion_path),
                target=str(model),
                target_model=str(model),
                target_tracking=str(target or ""),
            )
        try:
            start_s = first / rate if audio_start_s is None else audio_start_s
            write_mp4(
                out_mp4,
                n,
                frame_of,
                width,
                r,
                rate,
                ffmpeg=ffmpeg,
                crf=cfg.crf,
                audio=Path(audio) if audio else None,
                audio_start_s=start_s,
            )
        except BaseException:
            if out_h5 is not None:
                Path(out_h5).unlink(missing_ok=True)  # no half-finished pair of outputs
            raise
    log.info(
        "rendered motion frames %d:%d of %s with %s at %.3f fps -> %s", first, last, motion_path, model, rate, out_mp4
    )
    return DriveResult(frames, first, rate, target)
