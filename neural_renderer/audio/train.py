"""Per-identity training of N_exp and N_pose on the renderer's training split (targets: the tracked expression
and head pose), with held-out errors on the renderer's test split stored in the saved model.

A clip of a few dozen seconds is little data for audio -> expression: trained to convergence, the nets learn the
training frames (expression MSE 0.004 vs 0.033 for the mean) and lose to "predict the mean" on held-out speech
(0.056 vs 0.036; d6, 540 training frames). Two things keep a trained model no worse than the mean:
- both nets start as the mean predictor (zero output layer; N_exp's bias at the logit of the mean expression), so
  training moves away from the mean only where the audio explains the targets;
- early stopping: the end of the training range (`val_frames`) is held out, the nets are scored on it every
  `val_every` iterations from iteration 0, and the weights with the lowest validation error are kept, each net by its
  own error. A net that never beats its start stays the mean predictor. Training ends once `patience` iterations
  bring no better validation error for either net.
Dropped: weight decay, feature noise and smaller nets (each still lost to the mean on held-out frames).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neural_renderer.atomic import atomic_path
from neural_renderer.audio.config import AudioConfig
from neural_renderer.audio.features import audio_features
from neural_renderer.audio.model import ExpressionNet, PoseNet, neighbour_index, pose_to_matrix
from neural_renderer.errors import PipelineInputError
from neural_renderer.optim import check_finite, optimiser_step
from neural_renderer.presets import Placement, refuse_slow_cpu
from neural_renderer.reenact.transfer import rotation_mean
from neural_renderer.renderer.data import split_counts
from neural_renderer.storage import Motion

log = logging.getLogger(__name__)
FORMAT = "portrait-audio/2"


@dataclass
class AudioTrainingData:
    features: np.ndarray  # (T, n_mels, W) float32, one window per video frame
    expression: np.ndarray  # (T, Ke) float32
    pose: np.ndarray  # (T, 9) float32: 6D rotation relative to the mean + standardised translation offset
    rotation_rel: np.ndarray  # (T, 3, 3) the relative rotation itself (for angle errors)
    norm: dict[
        str, np.ndarray
    ]  # rotation_mean (3, 3), translation_mean (3,), translation_std (3,), gaze_mean_deg (2,), expression_mean (Ke,)
    train_idx: np.ndarray  # valid frames the nets learn from: [0, n_fit)
    val_idx: np.ndarray  # valid frames of [n_fit, n_train), the early-stopping split (empty: off)
    test_idx: np.ndarray  # the last n_test frames
    n_fit: int  # end of the frames learnt from (their neighbours stay inside [0, n_fit))
    n_train: int  # end of the renderer's training range
    fps: float


def relative_pose(
    motion: Motion, rotation_mean_: np.ndarray, translation_mean: np.ndarray, translation_std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(T, 9) N_pose targets and (T, 3, 3) relative rotations R_t R_mean^T."""
    rel = motion.rotation @ rotation_mean_.T
    six = rel[:, :, :2].transpose(0, 2, 1).reshape(-1, 6)
    off = (motion.translation - translation_mean[None]) / translation_std[None]
    return np.concatenate([six, off], 1).astype(np.float32), rel


def prepare(
    motion: Motion,
    samples: np.ndarray,
    cfg: AudioConfig,
    train_frames: float,
    test_frames: float,
    min_train_frames: int,
    source: Any = None,
    times_s: np.ndarray | None = None,
) -> AudioTrainingData:
    """Features for every tracked frame (its window at the frame's time `times_s` on the audio's clock when given, else
    frame / fps), targets and the renderer's train/test split (same rule as load_tracking), the last
    `cfg.train.val_frames` of the training range held out for early stopping."""
    t = len(motion)
    try:
        n_train, n_test = split_counts(t, train_frames, test_frames)
    except PipelineInputError as exc:
        raise PipelineInputError(source, exc.reason) from None
    n_fit = n_train - int(round(cfg.train.val_frames * n_train))
    train_idx = np.flatnonzero(motion.valid[:n_fit])
    val_idx = n_fit + np.flatnonzero(motion.valid[n_fit:n_train])
    test_idx = np.arange(t - n_test, t)
    if len(train_idx) + len(val_idx) < min_train_frames:  # the renderer's rule, on the whole training range
        raise PipelineInputError(
            source,
            f"too few valid training frames: {len(train_idx) + len(val_idx)} < min_train_frames {min_train_frames}",
        )
    feats = audio_features(samples, motion.fps, cfg.features, n_frames=t, times_s=times_s)
    r_mean = rotation_mean(motion.rotation[train_idx])
    t_mean = motion.translation[train_idx].mean(0)
    t_std = np.maximum(motion.translation[train_idx].std(0), 1e-3)
    pose, rel = relative_pose(motion, r_mean, t_mean, t_std)
    norm = {
        "rotation_mean": r_mean,
        "translation_mean": t_mean,
        "translation_std": t_std,
        "gaze_mean_deg": motion.gaze_deg[train_idx].mean(0),
        "expression_mean": motion.expression[train_idx].mean(0),
    }
    return AudioTrainingData(
        feats,
        motion.expression.astype(np.float32),
        pose,
        rel,
        norm,
        train_idx,
        val_idx,
        test_idx,
        n_fit,
        n_train,
        motion.fps,
    )


def rotation_angle_deg(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> rotation angle in degrees."""
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
    return np.degrees(np.arccos(cos))


@torch.no_grad()
def evaluate(
    exp_net,
    pose_net,
    data: AudioTrainingData,
    idx: np.ndarray,
    lo: int,
    hi: int,
    device: torch.device,
    mouth: np.ndarray | None = None,
) -> dict[str, float]:
    """Errors on frames `idx` (neighbours clamped to [lo, hi)) against predicting the training mean; `mouth` (Ke,)
    bool selects the speech-driven coefficients (jaw*, mouth*) for separate mouth_* errors."""
    feats = torch.from_numpy(data.features).to(device)
    centre = torch.from_numpy(idx).to(device)
    x = feats[neighbour_index(centre, exp_net.k, lo, hi)]
    e_true = data.expression[idx]
    e_pred = exp_net(x).cpu().numpy()
    out = {
        "expression_mse": float(np.mean((e_pred - e_true) ** 2)),
        "expression_mse_mean_baseline": float(np.mean((data.norm["expression_mean"][None] - e_true) ** 2)),
        "expression_mae": float(np.mean(np.abs(e_pred - e_true))),
        "expression_mae_mean_baseline": float(np.mean(np.abs(data.norm["expression_mean"][None] - e_true))),
        "n_frames": int(len(idx)),
    }
    if mouth is not None and mouth.any():
        out["mouth_mse"] = float(np.mean((e_pred - e_true)[:, mouth] ** 2))
        out["mouth_mse_mean_baseline"] = float(np.mean((data.norm["expression_mean"][None] - e_true)[:, mouth] ** 2))
    rel_true = data.rotation_rel[idx]
    off_true = data.pose[idx, 6:] * data.norm["translation_std"][None]
    out["rotation_error_deg_mean_baseline"] = float(rotation_angle_deg(rel_true).mean())
    out["translation_error_mean_baseline"] = float(np.linalg.norm(off_true, axis=1).mean())
    if pose_net is not None:
        pred = pose_net(feats[neighbour_index(centre, pose_net.k, lo, hi)])
        rel_pred = pose_to_matrix(pred.double()).cpu().numpy()
        off_pred = pred[:, 6:].cpu().numpy() * data.norm["translation_std"][None]
        out["rotation_error_deg"] = float(rotation_angle_deg(np.swapaxes(rel_pred, 1, 2) @ rel_true).mean())
        out["translation_error"] = float(np.linalg.norm(off_pred - off_true, axis=1).mean())
    return out


def mouth_mask(expression_names: list[str]) -> np.ndarray:
    """The coefficients speech drives directly: ARKit jaw* and mouth*."""
    return np.array([n.startswith(("jaw", "mouth")) for n in expression_names], bool)


@dataclass
class AudioTrainResult:
    model_path: Path
    losses: list[dict[str, float]]
    metrics: dict[str, Any]
    iterations_per_s: float


def driven_coefficients(cfg: AudioConfig, expression_names: list[str], n_expression: int) -> np.ndarray:
    """(Ke,) bool: the coefficients N_exp predicts (`model.expression`)."""
    mouth = mouth_mask(expression_names) if expression_names else np.zeros(n_expression, bool)
    return mouth if cfg.model.expression == "speech" and mouth.any() else np.ones(n_expression, bool)


def build_nets(
    cfg: AudioConfig, expression_mean: np.ndarray, driven: np.ndarray
) -> tuple[ExpressionNet, PoseNet | None]:
    f = cfg.features
    exp_net = ExpressionNet(f.n_mels, f.window, expression_mean, driven, cfg.model)
    pose_net = PoseNet(f.n_mels, f.window, cfg.model) if cfg.model.pose else None
    return exp_net, pose_net


class EarlyStopping:
    """Keeps each net's weights at its lowest validation error so far (the first score counts: iteration 0)."""

    def __init__(self, nets: dict[str, torch.nn.Module]):
        self.nets = nets
        self.best: dict[str, float] = {k: float("inf") for k in nets}
        self.best_iteration: dict[str, int] = {k: 0 for k in nets}
        self.states: dict[str, dict[str, torch.Tensor]] = {}

    def update(self, iteration: int, errors: dict[str, float]) -> dict[str, float]:
        for name, err in errors.items():
            if err < self.best[name]:
                self.best[name], self.best_iteration[name] = err, iteration
                self.states[name] = {k: v.detach().clone() for k, v in self.nets[name].state_dict().items()}
        return errors

    def restore(self) -> None:
        for name, state in self.states.items():
            self.nets[name].load_state_dict(state)


def train_audio(
    data: AudioTrainingData,
    cfg: AudioConfig,
    model_path: str | Path,
    *,
    expression_names: list[str],
    tracking_sha256: str = "",
    placement: Placement,
) -> AudioTrainResult:
    """Train N_exp (and N_pose) on the placement's device and preset, resolved by the stage."""
    t = cfg.train
    device, preset = placement.device, placement.preset
    torch.manual_seed(t.seed)
    gen = torch.Generator().manual_seed(t.seed)
    driven = driven_coefficients(cfg, expression_names, data.expression.shape[1])
    exp_net, pose_net = build_nets(cfg, data.norm["expression_mean"], driven)
    exp_net.start_at_mean()
    if pose_net is not None:
        pose_net.start_at_mean()
    nets = {"expression": exp_net, "pose": pose_net} if pose_net is not None else {"expression": exp_net}
    for n in nets.values():
        n.to(device).train()
    params = [p for n in nets.values() for p in n.parameters()]
    opt = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    feats = torch.from_numpy(data.features).to(device)
    expr = torch.from_numpy(data.expression).to(device)
    pose = torch.from_numpy(data.pose).to(device)
    train_idx = torch.from_numpy(data.train_idx)

    def step_loss(centre: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        d = exp_net.driven_index
        l_exp = torch.mean((exp_net(x)[:, d] - expr[centre][:, d]) ** 2)
        terms = {"expression": l_exp}
        loss = t.w_expression * l_exp
        if pose_net is not None:
            p = pose_net(x)
            terms["rotation"] = torch.mean((p[:, :6] - pose[centre, :6]) ** 2)
            terms["translation"] = torch.mean((p[:, 6:] - pose[centre, 6:]) ** 2)
            loss = loss + t.w_rotation * terms["rotation"] + t.w_translation * terms["translation"]
        return loss, terms

    val_centre = torch.from_numpy(data.val_idx).to(device)
    val_x = feats[neighbour_index(val_centre, exp_net.k, data.n_fit, data.n_train)] if len(val_centre) else None

    @torch.no_grad()
    def validation_errors() -> dict[str, float]:
        """Each net's own loss on the early-stopping frames."""
        _, terms = step_loss(val_centre, val_x)
        out = {"expression": float(terms["expression"])}
        if pose_net is not None:
            out["pose"] = float(t.w_rotation * terms["rotation"] + t.w_translation * terms["translation"])
        return out

    if preset.name == "seed" and device.type != "cuda" and not t.allow_slow_cpu:
        probe = train_idx[: t.batch_size].to(device)
        start = time.perf_counter()
        for _ in range(3):
            step_loss(probe, feats[neighbour_index(probe, exp_net.k, 0, data.n_fit)])[0].backward()
        opt.zero_grad(set_to_none=True)
        refuse_slow_cpu(
            preset, device, (time.perf_counter() - start) / 3 * t.iterations, "training the audio networks", False
        )
    log.info(
        "audio preset: %s (%s); %d iterations on %s; %d training frames, %d early-stopping frames",
        preset.name,
        preset.reason,
        t.iterations,
        device,
        len(data.train_idx),
        len(data.val_idx),
    )
    stopper = EarlyStopping(nets) if val_x is not None else None
    if stopper is not None:
        stopper.update(0, validation_errors())
    losses: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for it in range(t.iterations):
        centre = train_idx[torch.randint(len(train_idx), (t.batch_size,), generator=gen)].to(device)
        x = feats[neighbour_index(centre, exp_net.k, 0, data.n_fit)]
        if t.feature_noise > 0:
            x = x + t.feature_noise * torch.randn_like(x)
        loss, terms = step_loss(centre, x)
        row = {"iteration": it + 1, **{k: v.item() for k, v in terms.items()}}
        optimiser_step(opt, loss)
        row["loss"] = loss.item()
        check_finite(row, "loss", f"at iteration {it + 1}")
        if stopper is not None and ((it + 1) % t.val_every == 0 or it + 1 == t.iterations):
            row.update({f"val_{k}": v for k, v in stopper.update(it + 1, validation_errors()).items()})
        losses.append(row)
        if stopper is not None and t.patience and it + 1 - max(stopper.best_iteration.values()) >= t.patience:
            log.info("early stopping at iteration %d: no better validation error for %d", it + 1, t.patience)
            break
        if t.log_every and (it + 1) % t.log_every == 0:
            log.info(
                "it %d  %.1f it/s  %s",
                it + 1,
                (it + 1) / (time.perf_counter() - t0),
                {k: round(v, 5) for k, v in row.items()},
            )
    speed = len(losses) / max(time.perf_counter() - t0, 1e-9)
    if stopper is not None:
        stopper.restore()
        log.info("early stopping: kept iteration %s (validation %s)", stopper.best_iteration, stopper.best)
    for n in nets.values():
        n.eval()
    t_total = len(data.features)
    mouth = mouth_mask(expression_names)
    metrics = {
        "test": evaluate(exp_net, pose_net, data, data.test_idx, int(data.test_idx[0]), t_total, device, mouth),
        "train": evaluate(exp_net, pose_net, data, data.train_idx, 0, data.n_fit, device, mouth),
        "validation": (
            evaluate(exp_net, pose_net, data, data.val_idx, data.n_fit, data.n_train, device, mouth)
            if len(data.val_idx)
            else None
        ),
        "kept_iteration": stopper.best_iteration if stopper is not None else {k: t.iterations for k in nets},
        "iterations": len(losses),
        "iterations_per_s": speed,
        "device": str(device),
        "preset": preset.to_dict(),
    }
    log.info("audio model held-out: %s", metrics["test"])
    save_audio_model(
        model_path, cfg, exp_net, pose_net, data, expression_names, driven, metrics, losses, tracking_sha256
    )
    return AudioTrainResult(Path(model_path), losses, metrics, speed)


def save_audio_model(
    path,
    cfg: AudioConfig,
    exp_net,
    pose_net,
    data: AudioTrainingData,
    expression_names,
    driven: np.ndarray,
    metrics,
    losses,
    tracking_sha256: str,
) -> None:
    state = lambda net: {k: v.detach().cpu() for k, v in net.state_dict().items()}  # noqa: E731
    every = max(1, len(losses) // 200)  # a loss curve of at most ~200 points
    blob = {
        "format": FORMAT,
        "config": dataclasses.asdict(cfg),
        "n_expression": int(data.expression.shape[1]),
        "expression_names": list(expression_names),
        "expression_driven": torch.from_numpy(np.asarray(driven, bool)),
        "exp_net": state(exp_net),
        "pose_net": state(pose_net) if pose_net is not None else None,
        "norm": {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in data.norm.items()},
        "fps": data.fps,
        "train_idx": torch.from_numpy(data.train_idx),
        "val_idx": torch.from_numpy(data.val_idx),
        "test_idx": torch.from_numpy(data.test_idx),
        "metrics": metrics,
        "losses": losses[::every] + ([losses[-1]] if losses and (len(losses) - 1) % every else []),
        "tracking_sha256": tracking_sha256,
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
