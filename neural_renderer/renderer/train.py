"""Training loop with atomic checkpoints and exact resume (model, optimisers, discriminator, latents, RNG, iteration)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from neural_renderer.config import to_json
from neural_renderer.errors import PipelineInputError
from neural_renderer.renderer.config import RendererConfig
from neural_renderer.renderer.data import FrameCache, TrackingData
from neural_renderer.renderer.discriminator import MultiScaleDiscriminator
from neural_renderer.atomic import atomic_path
from neural_renderer.device import resolve_device
from neural_renderer.renderer.losses import feature_matching, gan_loss, make_perceptual
from neural_renderer.renderer.model import PortraitGenerator

log = logging.getLogger(__name__)
CHECKPOINT = "last.pt"


def atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fused_ok(device: torch.device) -> bool:
    return device.type == "cuda"


@dataclasses.dataclass
class TrainResult:
    iteration: int
    resumed_from: int
    losses: list[dict[str, float]]
    model_path: Path


def build_models(cfg: RendererConfig, resolution: int, n_expression: int, n_train: int, device: torch.device):
    gen = PortraitGenerator(cfg.model, resolution, n_expression, n_train).to(device)
    t = cfg.train
    disc = MultiScaleDiscriminator(3, t.disc_channels, t.disc_layers, t.disc_scales).to(device) if t.w_adv > 0 or t.w_fm > 0 else None
    if t.channels_last:
        gen = gen.to(memory_format=torch.channels_last)
        if disc is not None:
            disc = disc.to(memory_format=torch.channels_last)
    fused = _fused_ok(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), fused=fused)
    opt_d = torch.optim.Adam(disc.parameters(), lr=t.lr_discriminator, betas=(t.beta1, t.beta2), fused=fused) if disc is not None else None
    return gen, disc, opt_g, opt_d


def train(
    data: TrackingData,
    cfg: RendererConfig,
    model_path: str | Path,
    work_dir: str | Path,
    hook: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train (or resume from `work_dir/checkpoints/last.pt`) and write the final model to `model_path` atomically.

    `work_dir` (not a declared output) holds checkpoints/, losses.jsonl and samples/. `hook(iteration, losses)` runs
    after every step (tests raise from it to simulate a crash).
    """
    t = cfg.train
    device = resolve_device(t.device)
    work_dir, model_path = Path(work_dir), Path(model_path)
    ckpt_path = work_dir / "checkpoints" / CHECKPOINT
    torch.manual_seed(t.seed)
    np.random.seed(t.seed)
    random.seed(t.seed)
    norm = data.normalisation()
    n_train = len(data.train_idx)
    gen, disc, opt_g, opt_d = build_models(cfg, data.resolution, data.expression.shape[1], n_train, device)
    perceptual = make_perceptual(t.vgg_weights, t.w_vgg)
    if perceptual is not None:
        perceptual = perceptual.to(device)
    try:
        cache = FrameCache(data.frames[data.train_idx], device, t.gpu_cache)
    except torch.cuda.OutOfMemoryError:
        raise PipelineInputError(data.path, "out of GPU memory holding the training frames: set renderer.train.gpu_cache: host") from None
    cond_all = data.conditioning(data.train_idx, norm).to(device)
    sampler = torch.Generator().manual_seed(t.seed)
    config_json = to_json(dataclasses.asdict(cfg.model))

    start = 0
    if ckpt_path.is_file():
        try:
            ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - a torn file cannot exist (atomic), but a foreign one can
            raise PipelineInputError(ckpt_path, f"cannot read checkpoint ({exc}); delete it to start over") from None
        if ckpt["model_config"] != config_json or ckpt["n_train"] != n_train:
            log.warning("checkpoint %s is from another model configuration or split: starting over", ckpt_path)
        else:
            gen.load_state_dict(ckpt["generator"])
            opt_g.load_state_dict(ckpt["opt_g"])
            if disc is not None and ckpt.get("discriminator") is not None:
                disc.load_state_dict(ckpt["discriminator"])
                opt_d.load_state_dict(ckpt["opt_d"])
            sampler.set_state(ckpt["sampler"])
            _set_rng_state(ckpt["rng"])
            start = int(ckpt["iteration"])
            log.info("resumed from %s at iteration %d", ckpt_path, start)
    losses_path = work_dir / "losses.jsonl"
    history = _read_losses(losses_path, start)

    def save_checkpoint(iteration: int) -> None:
        atomic_save(
            {
                "iteration": iteration, "generator": gen.state_dict(), "opt_g": opt_g.state_dict(),
                "discriminator": disc.state_dict() if disc is not None else None,
                "opt_d": opt_d.state_dict() if opt_d is not None else None,
                "sampler": sampler.get_state(), "rng": _rng_state(), "model_config": config_json, "n_train": n_train,
            },
            ckpt_path,
        )
        _write_losses(losses_path, history)

    step_fn = gen
    if t.compile:
        step_fn = torch.compile(gen)
    amp = t.amp and device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    bar = None
    if t.progress:
        from tqdm import tqdm

        bar = tqdm(total=t.iterations, initial=start, unit="it", dynamic_ncols=True, mininterval=1.0)
    gen.train()
    it = start
    t0 = time.perf_counter()
    try:
        for it in range(start, t.iterations):
            idx = torch.randint(n_train, (t.batch_size,), generator=sampler)
            real = cache.batch(idx, t.channels_last)
            didx = idx.to(device)
            cond = cond_all.index(didx)
            row: dict[str, float] = {"iteration": it + 1}
            with autocast():
                fake, low = step_fn(cond.pose, cond.gaze, cond.expression, gen.latents(didx) if cfg.model.variant == "full" else None)
            fake, low = fake.float(), low.float()
            if disc is not None:
                with autocast():
                    pred_fake = disc(fake.detach())
                    pred_real = disc(real)
                loss_d = 0.5 * (gan_loss(pred_fake, False) + gan_loss(pred_real, True))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                row["d"] = loss_d.item()
            loss = t.w_l1 * F.l1_loss(fake, real)
            row["l1"] = F.l1_loss(fake.detach(), real).item()
            if t.w_low > 0:
                l_low = F.l1_loss(low, F.avg_pool2d(real, 4))
                loss = loss + t.w_low * l_low
                row["low"] = l_low.item()
            if perceptual is not None:
                l_vgg = perceptual(fake, real)
                loss = loss + t.w_vgg * l_vgg
                row["vgg"] = l_vgg.item()
            if disc is not None:
                with autocast():
                    pred_fake = disc(fake)
                    if t.w_fm > 0:
                        with torch.no_grad():
                            pred_real = disc(real)
                l_adv = gan_loss(pred_fake, True)
                loss = loss + t.w_adv * l_adv
                row["adv"] = l_adv.item()
                if t.w_fm > 0:
                    l_fm = feature_matching(pred_fake, pred_real)
                    loss = loss + t.w_fm * l_fm
                    row["fm"] = float(l_fm.detach()) if torch.is_tensor(l_fm) else float(l_fm)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            row["loss"] = loss.item()
            if not np.isfinite(row["loss"]):
                raise FloatingPointError(f"non-finite loss at iteration {it + 1}: {row}")
            history.append(row)
            done = it + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4f}", l1=f"{row['l1']:.4f}", refresh=False)
            if t.sample_every and done % t.sample_every == 0:
                _write_sample(work_dir / "samples" / f"{done:08d}.png", real, fake)
            if done % t.checkpoint_every == 0 or done == t.iterations:
                save_checkpoint(done)
            if t.log_every and done % t.log_every == 0:
                log.info("it %d  %.2f it/s  %s", done, (done - start) / (time.perf_counter() - t0), {k: round(v, 5) for k, v in row.items()})
            if hook is not None:
                hook(done, row)
    except torch.cuda.OutOfMemoryError:
        raise PipelineInputError(
            data.path, f"out of GPU memory at resolution {data.resolution}, batch {t.batch_size}, width {cfg.model.width}: "
            "lower renderer.train.batch_size or renderer.model.width/decoder_channels (progress kept in the last checkpoint)"
        ) from None
    finally:
        if bar is not None:
            bar.close()
    final_iter = max(start, t.iterations)
    if start >= t.iterations and not history:
        log.info("checkpoint already at iteration %d >= %d", start, t.iterations)
    _write_losses(losses_path, history)
    save_model(model_path, gen, cfg, norm, data, final_iter)
    return TrainResult(final_iter, start, history, model_path)


def save_model(path: Path, gen: PortraitGenerator, cfg: RendererConfig, norm: dict[str, np.ndarray], data: TrackingData, iteration: int) -> None:
    state = {k: v.detach().cpu() for k, v in gen.state_dict().items()}
    atomic_save(
        {
            "format": "portrait-renderer/1", "generator": state, "config": dataclasses.asdict(cfg),
            "resolution": data.resolution, "n_expression": int(data.expression.shape[1]), "n_train": len(data.train_idx),
            "norm": {k: torch.from_numpy(v) for k, v in norm.items()}, "iteration": iteration,
            "train_idx": torch.from_numpy(data.train_idx), "test_idx": torch.from_numpy(data.test_idx), "fps": data.fps,
        },
        path,
    )


def _read_losses(path: Path, upto: int) -> list[dict[str, float]]:
    if not path.is_file() or upto == 0:
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["iteration"] <= upto]


def _write_losses(path: Path, rows: list[dict[str, float]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _write_sample(path: Path, real: torch.Tensor, fake: torch.Tensor) -> None:
    import cv2

    pair = torch.cat([real[:4], fake[:4].detach()], dim=3)  # ground truth | render, up to 4 rows
    img = ((pair.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).reshape(-1, pair.shape[3], 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img.cpu().numpy(), cv2.COLOR_RGB2BGR))
