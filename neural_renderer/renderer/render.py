"""Inference: a streaming API (one frame's parameters in, one image out) and self-reenactment of the test frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neural_renderer.config import build_dataclass
from neural_renderer.device import resolve_device
from neural_renderer.errors import PipelineInputError
from neural_renderer.outputs import SELF
from neural_renderer.progress import progress
from neural_renderer.renderer.config import RendererConfig
from neural_renderer.renderer.data import TrackingData, pose_features, standardise
from neural_renderer.renderer.model import PortraitGenerator
from neural_renderer.renderer.train import MODEL_FORMAT
from neural_renderer.storage import read_timestamps, write_rendered
from neural_renderer.torch_files import load_weights
from neural_renderer.video.mp4 import write_mp4


class PortraitRenderer:
    """Load a trained model once, then `render(expression, rotation, translation, gaze_pitch_yaw_deg)` per frame.

    Outputs are at the model's resolution (`resolution`; the preview preset trains at 128 px on a 512 px crop).
    """

    def __init__(self, model_path: str | Path, device: str = "auto", test_latent: str | None = None):
        path = Path(model_path)
        blob = load_weights(path, "renderer model")
        if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
            found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
            raise PipelineInputError(
                path, f"not a renderer model of format {MODEL_FORMAT} (found {found!r}): retrain it"
            )
        self.cfg = build_dataclass(RendererConfig, blob["config"])
        self.preset = dict(blob.get("preset", {}))
        self.device = resolve_device(device)
        self.resolution = int(blob["resolution"])
        self.n_expression = int(blob["n_expression"])
        self.expression_names = list(blob.get("expression_names", []))
        self.iteration = int(blob["iteration"])
        self.gen = PortraitGenerator(self.cfg.model, self.resolution, blob["n_expression"], blob["n_train"])
        self.gen.load_state_dict(blob["generator"])
        self.gen.to(self.device).eval()
        if self.cfg.train.channels_last and self.device.type == "cuda":
            self.gen = self.gen.to(memory_format=torch.channels_last)
        self.norm = {k: v.numpy() for k, v in blob["norm"].items()}
        self.train_idx = blob["train_idx"].numpy()
        self.test_idx = blob["test_idx"].numpy()
        self.fps = float(blob["fps"])
        choice = test_latent or self.cfg.render.test_latent
        codes = self.gen.latents.weight.detach()
        self.latent = {"mean": codes.mean(0), "first": codes[0], "zero": torch.zeros_like(codes[0])}[choice][None]

    @torch.inference_mode()
    def render_batch(self, pose: np.ndarray, gaze_rad: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """Raw features (B, 9) pose_features, (B, 2) rad, (B, Ke) -> (B, R, R, 3) uint8."""
        if np.shape(expression)[-1] != self.n_expression:
            raise PipelineInputError(
                None, f"motion has {np.shape(expression)[-1]} expression coefficients, the model {self.n_expression}"
            )
        cond = standardise(
            np.asarray(pose, np.float32),
            np.asarray(gaze_rad, np.float32),
            np.asarray(expression, np.float32),
            self.norm,
        ).to(self.device)
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and self.cfg.train.amp)
        with amp:
            img, _ = self.gen(cond.pose, cond.gaze, cond.expression, self.latent.expand(len(pose), -1))
        return ((img.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    def render_sequence(
        self, pose: np.ndarray, gaze_rad: np.ndarray, expression: np.ndarray, batch_size: int = 8
    ) -> np.ndarray:
        """`render_batch` over any number of frames, `batch_size` at a time -> (T, R, R, 3) uint8."""
        r = self.resolution
        out = np.empty((len(pose), r, r, 3), np.uint8)
        for s in progress(range(0, len(pose), batch_size), desc="render", unit="batch"):
            out[s : s + batch_size] = self.render_batch(
                pose[s : s + batch_size], gaze_rad[s : s + batch_size], expression[s : s + batch_size]
            )
        return out

    def render_motion(
        self,
        expression: np.ndarray,
        rotation: np.ndarray,
        translation: np.ndarray,
        gaze_pitch_yaw_deg: np.ndarray,
        batch_size: int = 8,
    ) -> np.ndarray:
        """Per-frame parameters in the units of `storage.Motion` (expression (T, Ke), model->camera rotation
        (T, 3, 3), translation (T, 3), gaze (T, 2) deg) -> (T, R, R, 3) uint8, `batch_size` frames at a time."""
        pose = pose_features(rotation, np.asarray(translation).astype(np.float32))
        gaze = np.deg2rad(gaze_pitch_yaw_deg).astype(np.float32)
        return self.render_sequence(pose, gaze, expression, batch_size)

    def render(
        self, expression: np.ndarray, rotation: np.ndarray, translation: np.ndarray, gaze_pitch_yaw_deg: np.ndarray
    ) -> np.ndarray:
        """One frame: expression (Ke,), model->camera rotation (3, 3), translation (3,), gaze (2,) deg -> (R, R, 3)."""
        pose = pose_features(np.asarray(rotation)[None], np.asarray(translation, np.float32)[None])
        gaze = np.deg2rad(np.asarray(gaze_pitch_yaw_deg, np.float32))[None]
        return self.render_batch(pose, gaze, np.asarray(expression, np.float32)[None])[0]


def render_test_frames(
    data: TrackingData,
    renderer: PortraitRenderer,
    out_mp4: Path,
    out_h5: Path,
    side_by_side_mp4: Path | None,
    *,
    ffmpeg: str,
    audio_source: Path | None = None,
    batch_size: int = 4,
    crf: int = 18,
    video: str = "",
) -> np.ndarray:
    """Self-reenactment of data.test_idx from its own parameters: mp4 (with audio), frames HDF5, GT | render mp4."""
    if data.resolution != renderer.resolution:
        raise PipelineInputError(
            data.path, f"crop resolution {data.resolution} != model resolution {renderer.resolution}"
        )
    idx = data.test_idx
    r = data.resolution
    start_s = float(read_timestamps(data.path)[idx[0]])  # the file's clock (the audio's), not idx / fps
    out_mp4, out_h5 = Path(out_mp4), Path(out_h5)
    rendered = renderer.render_sequence(data.pose[idx], data.gaze_rad[idx], data.expression[idx], batch_size)
    write_rendered(
        out_h5,
        rendered,
        idx,
        kind=SELF.name,
        video=video,
        source_path=data.path,
        stage_config=renderer.cfg.to_dict(),
        fps=data.fps,
        driver=video,
        target=video,
        test_latent=renderer.cfg.render.test_latent,
    )
    outputs = [(out_mp4, lambda i: rendered[i], r)]
    if side_by_side_mp4 is not None:
        outputs.append(
            (Path(side_by_side_mp4), lambda i: np.concatenate([data.frames[idx[i]], rendered[i]], axis=1), 2 * r)
        )
    for path, frame_of, width in outputs:
        write_mp4(
            path,
            len(idx),
            frame_of,
            width,
            r,
            data.fps,
            ffmpeg=ffmpeg,
            crf=crf,
            audio=audio_source,
            audio_start_s=start_s,
        )
    return rendered
