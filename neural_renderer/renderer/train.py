"""Training: sample a batch, ask the model's losses, step; atomic checkpoints with exact resume.

Structure: `train` is the loop (sample a batch, the model's losses, step, record), set up by `build_trainer` and
`resume`. `Trainer` owns the generator, the losses (`PortraitLoss`: perceptual network and discriminator), the two
optimisers (stepped by `optim.optimiser_step`, shared with the audio networks) and the batch sampler;
`Bookkeeping` does what follows a step (loss log, progress, samples, checkpoints). A checkpoint holds all of them
plus every RNG state, and the run's *identity* (model and training settings that shape the run, the split, the input
file's sha256): a checkpoint of another run is never resumed; training starts over with a warning naming what
changed. Only `iterations` (train longer) and bookkeeping (logging, checkpoint cadence, progress) may change between
a checkpoint and its resume.

GPU habits: the losses stay on the device and are read every `log_every` iterations (one host sync per window, not
per step); frames sit on the device as uint8 (`FrameCache`; too many for that: read per batch, the next one read
while a step runs); bf16 autocast, fused Adam and channels_last on CUDA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neural_renderer.assets import sha256_file
from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError
from neural_renderer.optim import check_finite, optimiser_step
from neural_renderer.presets import Placement, PresetChoice, refuse_slow_cpu
from neural_renderer.renderer.config import RendererConfig
from neural_renderer.renderer.data import FrameCache, TrackingData
from neural_renderer.renderer.frames import mean_frame
from neural_renderer.renderer.losses import PortraitLoss
from neural_renderer.renderer.model import GAZE_DIM, POSE_DIM, PortraitGenerator
from neural_renderer.renderer.report import sample_grid, write_png, write_training_report
from neural_renderer.torch_files import load_weights

log = logging.getLogger(__name__)
CHECKPOINT = "last.pt"
MODEL_FORMAT = "portrait-renderer/2"
# Training settings that do not change what is computed: a checkpoint resumes across changes of these.
BOOKKEEPING = (
    "iterations",
    "checkpoint_every",
    "log_every",
    "sample_every",
    "progress",
    "tensorboard",
    "allow_slow_cpu",
    "compile",
    "device",
    "frames_in_memory_mb",
)


def atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _rng_state() -> dict[str, Any]:
    """Every RNG the loop draws from, in types `torch.load(weights_only=True)` accepts."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def run_identity(cfg: RendererConfig, data: TrackingData) -> dict[str, Any]:
    """Everything that shapes a training run; a checkpoint resumes only when this is equal."""
    train = {k: v for k, v in dataclasses.asdict(cfg.train).items() if k not in BOOKKEEPING}
    split = hashlib.sha256(
        data.train_idx.astype(np.int64).tobytes() + b"|" + data.test_idx.astype(np.int64).tobytes()
    ).hexdigest()
    return {
        "model": dataclasses.asdict(cfg.model),
        "train": train,
        "resolution": data.resolution,
        "split": split,
        "tracking_sha256": sha256_file(data.path) if data.path else "",
    }


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of what differs between two run identities (`train.lr`, `tracking_sha256`, ...)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            changes.append(key)
    return changes


@dataclasses.dataclass
class TrainResult:
    iteration: int
    resumed_from: int
    losses: list[dict[str, float]]
    model_path: Path
    preset: PresetChoice | None = None
    seconds_per_iteration: float = float("nan")


class Trainer:
    """The models, losses and optimisers of one run, and one `step`."""

    def __init__(self, cfg: RendererConfig, data: TrackingData, device: torch.device):
        t = cfg.train
        self.cfg, self.device = cfg, device
        self.norm = data.normalisation()
        self.n_train = len(data.train_idx)
        self.gen = PortraitGenerator(cfg.model, data.resolution, data.expression.shape[1], self.n_train)
        mean = torch.from_numpy(mean_frame(data.frames, data.train_idx).astype(np.float32))
        self.gen.set_prior(mean.permute(2, 0, 1) / 127.5 - 1)
        self.gen.to(device)
        self.loss = PortraitLoss(t, POSE_DIM + GAZE_DIM + data.expression.shape[1]).to(device)
        self.channels_last = t.channels_last and device.type == "cuda"  # slower on the CPU (issue 10: 3.5 s vs 2.9 s)
        if self.channels_last:
            self.gen = self.gen.to(memory_format=torch.channels_last)
            self.loss = self.loss.to(memory_format=torch.channels_last)
        fused = device.type == "cuda"
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), fused=fused)
        disc = self.loss.disc
        self.opt_d = (
            torch.optim.Adam(disc.parameters(), lr=t.lr_discriminator, betas=(t.beta1, t.beta2), fused=fused)
            if disc is not None
            else None
        )
        try:
            self.frames = FrameCache(data.frames, data.train_idx, device, t.gpu_cache)
        except torch.cuda.OutOfMemoryError:
            raise PipelineInputError(
                data.path, "out of GPU memory holding the training frames: set renderer.train.gpu_cache: host"
            ) from None
        self.mouth = torch.from_numpy(data.mouth[data.train_idx]).to(device)
        self.cond = data.conditioning(data.train_idx, self.norm).to(device)
        self.sampler = torch.Generator().manual_seed(t.seed)
        self.forward = torch.compile(self.gen) if t.compile else self.gen
        amp = t.amp and device.type == "cuda"
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext

    def losses(
        self, idx: torch.Tensor, iteration: int, jitter: bool = True
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The named losses of the training frames `idx` (positions in the training split) at `iteration`."""
        real = self.frames.batch(idx, self.channels_last)
        didx = idx.to(self.device)
        cond = self.cond.index(didx)
        if jitter:
            cond = cond.jitter(self.cfg.train.pose_noise)
        latent = self.gen.latents(didx) if self.cfg.model.variant == "full" else None
        with self.autocast():
            fake, low = self.forward(cond.pose, cond.gaze, cond.expression, latent)
            return self.loss(fake, low, real, self.mouth[didx], cond.vector(), iteration)

    def sample(self) -> torch.Tensor:
        """A batch of training frames (positions in the training split), from the run's own seeded sampler."""
        idx = torch.randint(self.n_train, (self.cfg.train.batch_size,), generator=self.sampler)
        if self.frames.stream is not None:  # read the next batch meanwhile: the next draw, from a copy of the sampler
            ahead = torch.Generator()
            ahead.set_state(self.sampler.get_state())
            self.frames.prefetch(torch.randint(self.n_train, (self.cfg.train.batch_size,), generator=ahead))
        return idx

    def step(self, terms: dict[str, torch.Tensor], loss_d: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """One optimisation step of the generator (on `terms["total"]`), then of the discriminator (on `loss_d`)
        -> detached loss terms (still on the device)."""
        optimiser_step(self.opt_g, terms["total"])
        if loss_d is not None:
            optimiser_step(self.opt_d, loss_d)
        return {k: v.detach() for k, v in terms.items()}

    def state(self, iteration: int, identity: dict[str, Any]) -> dict[str, Any]:
        return {
            "iteration": iteration,
            "generator": self.gen.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "discriminator": self.loss.disc.state_dict() if self.loss.disc is not None else None,
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "sampler": self.sampler.get_state(),
            "rng": _rng_state(),
            "identity": json.dumps(identity, sort_keys=True),
        }

    def load_state(self, ckpt: dict[str, Any]) -> int:
        self.gen.load_state_dict(ckpt["generator"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        if self.loss.disc is not None and ckpt.get("discriminator") is not None:
            self.loss.disc.load_state_dict(ckpt["discriminator"])
            self.opt_d.load_state_dict(ckpt["opt_d"])
        self.sampler.set_state(ckpt["sampler"])
        _set_rng_state(ckpt["rng"])
        return int(ckpt["iteration"])

    def seconds_per_step(self, n: int = 2) -> float:
        """Time forward + losses + backward of a batch (no optimiser step, no RNG drawn, nothing kept), with the
        adversarial terms at full weight as after the warm-up: the slow-CPU estimate."""
        t = self.cfg.train
        idx = torch.arange(t.batch_size) % self.n_train
        times = []
        for _ in range(n + 1):
            t0 = time.perf_counter()
            self.losses(idx, t.adv_warmup + t.adv_ramp, jitter=False)[0]["total"].backward()
            times.append(time.perf_counter() - t0)
        self.gen.zero_grad(set_to_none=True)
        if self.loss.disc is not None:
            self.loss.disc.zero_grad(set_to_none=True)
        return float(np.median(times[1:]))


def load_checkpoint(path: Path, device: torch.device, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at `path` if it belongs to this run; else None with a warning naming what changed."""
    if not path.is_file():
        return None
    try:  # a torn file cannot exist (atomic), but a foreign one can
        ckpt = load_weights(path, "checkpoint", map_location=device)
    except PipelineInputError as exc:
        raise PipelineInputError(path, f"{exc.reason}; delete it to start over") from None
    old = json.loads(ckpt.get("identity", "{}")) if isinstance(ckpt, dict) else {}
    changes = identity_changes(old, identity)
    if changes:
        log.warning("checkpoint %s is from another run (changed: %s): starting over", path, ", ".join(changes))
        return None
    return ckpt


class LossLog:
    """Per-step loss tensors, averaged and read from the device once per window (`flush`)."""

    def __init__(self, path: Path, upto: int, tensorboard_dir: Path | None):
        self.path = path
        self.rows = _read_losses(path, upto)
        self.pending: list[dict[str, torch.Tensor]] = []
        self.writer = _tensorboard(tensorboard_dir)

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        self.pending.append(terms)

    def flush(self, iteration: int) -> dict[str, float] | None:
        if not self.pending:
            return None
        keys = sorted(self.pending[0])
        means = torch.stack([torch.stack([p[k].float() for k in keys]) for p in self.pending]).mean(0).cpu().tolist()
        row = {"iteration": iteration, **dict(zip(keys, means))}
        self.pending.clear()
        check_finite(row, "total", f"before iteration {iteration}")
        self.rows.append(row)
        if self.writer is not None:
            for k in keys:
                self.writer.add_scalar(f"loss/{k}", row[k], iteration)
        return row

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tensorboard(log_dir: Path | None):
    if log_dir is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("train.tensorboard is on but the `tensorboard` package is not installed: pip install tensorboard")
        return None
    return SummaryWriter(str(log_dir))


def train(
    data: TrackingData,
    cfg: RendererConfig,
    model_path: str | Path,
    work_dir: str | Path,
    placement: Placement,
    hook: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
) -> TrainResult:
    """Train (or resume from `work_dir/checkpoints/last.pt`) and write the final model to `model_path` atomically.

    `work_dir` (not a declared output) holds checkpoints/, losses.jsonl, samples/ and the report figures.
    `placement`: the device and preset the stage resolved (`resolve_renderer_config`).
    `hook(iteration, terms)` runs after every step (tests raise from it to simulate a crash).
    """
    t = cfg.train
    work_dir, model_path = Path(work_dir), Path(model_path)
    trainer = build_trainer(data, cfg, placement)
    preset = placement.preset
    identity = run_identity(cfg, data)
    start = resume(trainer, work_dir / "checkpoints" / CHECKPOINT, identity)
    trainer.gen.train()
    with Bookkeeping(trainer, data, work_dir, identity, start, hook) as books, _out_of_memory_is_input_error(cfg, data):
        for it in range(start, t.iterations):
            idx = trainer.sample()  # a batch
            terms, loss_d = trainer.losses(idx, it)  # the model's losses
            books.record(it + 1, trainer.step(terms, loss_d))  # step, then log / checkpoint
    seconds = books.seconds_per_iteration
    if start >= t.iterations:
        log.info("checkpoint already at iteration %d >= %d", start, t.iterations)
    books.losses.save()
    final_iter = max(start, t.iterations)
    save_model(model_path, trainer, cfg, data, final_iter, preset)
    write_training_report(work_dir, books.losses.rows, preset, cfg, final_iter, seconds, test_samples(trainer, data))
    return TrainResult(final_iter, start, books.losses.rows, model_path, preset, seconds)


def build_trainer(data: TrackingData, cfg: RendererConfig, placement: Placement) -> Trainer:
    """The seeded Trainer on the placement's device (refused up front when the preset would take too long on a
    CPU)."""
    t = cfg.train
    device, preset = placement.device, placement.preset
    _seed(t.seed)
    trainer = Trainer(cfg, data, device)
    if preset.name == "seed" and device.type != "cuda" and not t.allow_slow_cpu:
        estimate = trainer.seconds_per_step() * t.iterations
        refuse_slow_cpu(preset, device, estimate, f"training the renderer of {data.path}", False)
    log.info(
        "renderer preset: %s (%s); %d iterations at %d px, batch %d, on %s",
        preset.name,
        preset.reason,
        t.iterations,
        data.resolution,
        t.batch_size,
        device,
    )
    return trainer


def resume(trainer: Trainer, ckpt_path: Path, identity: dict[str, Any]) -> int:
    """Load this run's checkpoint into `trainer` when there is one -> the iteration to start from (0 without)."""
    ckpt = load_checkpoint(ckpt_path, trainer.device, identity)
    if ckpt is None:
        return 0
    start = trainer.load_state(ckpt)
    log.info("resumed from %s at iteration %d", ckpt_path, start)
    return start


@contextlib.contextmanager
def _out_of_memory_is_input_error(cfg: RendererConfig, data: TrackingData):
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise PipelineInputError(
            data.path,
            f"out of GPU memory at resolution {data.resolution}, batch {cfg.train.batch_size}, width "
            f"{cfg.model.width}: lower renderer.train.batch_size or renderer.model.width/decoder_channels "
            "(progress kept in the last checkpoint)",
        ) from None


class Bookkeeping:
    """What happens after each step: the loss log (a window's mean read once per `log_every`), progress bar,
    sample grids, atomic checkpoints (with losses.jsonl) and the test hook. A context manager: closes the bar and
    the TensorBoard writer however the loop ends."""

    def __init__(
        self,
        trainer: Trainer,
        data: TrackingData,
        work_dir: Path,
        identity: dict[str, Any],
        start: int,
        hook: Callable[[int, dict[str, torch.Tensor]], None] | None,
    ):
        self.t = t = trainer.cfg.train
        self.trainer, self.data, self.work_dir, self.identity, self.hook = trainer, data, work_dir, identity, hook
        self.ckpt_path = work_dir / "checkpoints" / CHECKPOINT
        self.losses = LossLog(work_dir / "losses.jsonl", start, work_dir / "tensorboard" if t.tensorboard else None)
        self.bar = None
        if t.progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=t.iterations, initial=start, unit="it", desc="train renderer", dynamic_ncols=True, mininterval=1.0
            )
        self.start = self.done = start
        self.t0 = time.perf_counter()

    def __enter__(self) -> Bookkeeping:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        self.losses.close()

    @property
    def seconds_per_iteration(self) -> float:
        steps = self.done - self.start
        return (time.perf_counter() - self.t0) / steps if steps > 0 else float("nan")

    def record(self, done: int, terms: dict[str, torch.Tensor]) -> None:
        """After iteration `done` (1-based count of finished steps) with its detached loss terms."""
        t = self.t
        self.losses.add(terms)
        self.done = done
        if self.bar is not None:
            self.bar.update(1)
        at_checkpoint = done % t.checkpoint_every == 0 or done == t.iterations
        if (t.log_every and done % t.log_every == 0) or at_checkpoint:
            row = self.losses.flush(done)
            rate = (done - self.start) / (time.perf_counter() - self.t0)
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{row['total']:.4f}", l1=f"{row['l1']:.4f}", refresh=False)
            log.info("it %d  %.2f it/s  %s", done, rate, {k: round(v, 5) for k, v in row.items()})
        if t.sample_every and done % t.sample_every == 0:
            write_samples(self.work_dir / "samples" / f"{done:08d}.png", self.trainer, self.data)
        if at_checkpoint:
            atomic_save(self.trainer.state(done, self.identity), self.ckpt_path)
            self.losses.save()
        if self.hook is not None:
            self.hook(done, {})


@torch.no_grad()
def test_samples(trainer: Trainer, data: TrackingData, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, render) uint8 of up to n held-out test frames (mean latent code), for the report."""
    idx = data.test_idx[np.linspace(0, len(data.test_idx) - 1, min(n, len(data.test_idx))).round().astype(int)]
    cond = data.conditioning(idx, trainer.norm).to(trainer.device)
    latent = trainer.gen.latents.weight.mean(0, keepdim=True).expand(len(idx), -1)
    was_training = trainer.gen.training
    trainer.gen.eval()
    img, _ = trainer.gen(cond.pose, cond.gaze, cond.expression, latent)
    trainer.gen.train(was_training)
    fake = ((img.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return data.frames[idx], fake


def write_samples(path: Path, trainer: Trainer, data: TrackingData) -> None:
    write_png(path, sample_grid(*test_samples(trainer, data)))


def save_model(
    path: Path, trainer: Trainer, cfg: RendererConfig, data: TrackingData, iteration: int, preset: PresetChoice
) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in trainer.gen.state_dict().items()}
    atomic_save(
        {
            "format": MODEL_FORMAT,
            "generator": state,
            "config": dataclasses.asdict(cfg),
            "preset": preset.to_dict(),
            "resolution": data.resolution,
            "crop_resolution": data.crop_resolution,
            "n_expression": int(data.expression.shape[1]),
            "expression_names": list(data.expression_names),
            "n_train": len(data.train_idx),
            "norm": {k: torch.from_numpy(v) for k, v in trainer.norm.items()},
            "iteration": iteration,
            "train_idx": torch.from_numpy(data.train_idx),
            "test_idx": torch.from_numpy(data.test_idx),
            "fps": float(data.fps),
        },
        path,
    )


def _read_losses(path: Path, upto: int) -> list[dict[str, float]]:
    if not path.is_file() or upto == 0:
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["iteration"] <= upto]
