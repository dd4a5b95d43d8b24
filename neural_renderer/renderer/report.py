"""What a person looks at after training: loss curves and held-out test frames (ground truth | render), as PNGs
that the workflow puts into `snakemake --report`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neural_renderer.atomic import atomic_path
from neural_renderer.presets import PresetChoice, format_duration
from neural_renderer.renderer.config import RendererConfig

CURVES = "training_curves.png"
SAMPLES = "test_samples.png"


def write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png.tobytes())


def sample_grid(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
    """(N, R, R, 3) pairs -> one image, a row per frame: ground truth | render."""
    return np.concatenate([np.concatenate([r, f], 1) for r, f in zip(real, fake)], 0)


def plot_losses(path: Path, rows: list[dict[str, float]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in (rows[0] if rows else {}) if k != "iteration"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    its = [r["iteration"] for r in rows]
    for k in keys:
        ax.plot(its, [r.get(k, np.nan) for r in rows], label=k, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (window mean)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_training_report(
    work_dir: Path,
    rows: list[dict[str, float]],
    preset: PresetChoice,
    cfg: RendererConfig,
    iterations: int,
    seconds_per_it: float,
    samples: tuple[np.ndarray, np.ndarray],
) -> tuple[Path, Path]:
    work_dir = Path(work_dir)
    speed = (
        f", {1 / seconds_per_it:.2f} it/s (~{format_duration(seconds_per_it * cfg.train.iterations)} in all)"
        if np.isfinite(seconds_per_it)
        else ""
    )
    title = (
        f"preset {preset.name} ({preset.reason})\n"
        f"{cfg.model.variant}, {iterations} iterations, batch {cfg.train.batch_size}{speed}"
    )
    plot_losses(work_dir / CURVES, rows, title)
    write_png(work_dir / SAMPLES, sample_grid(*samples))
    return work_dir / CURVES, work_dir / SAMPLES
