"""One video through the preprocessing stages without Snakemake (benchmarks, quick looks).

The same stage runners the rules call, in the DAG's order (ingest -> track -> crop -> fit -> gaze -> assemble -> qc)
and with the DAG's file names under `out_dir`, so the results are those a `snakemake` run would write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neural_renderer.stages import assemble, correspondence, crop, fit, gaze, ingest, qc, track


@dataclass(frozen=True)
class PreprocessModels:
    """The model files of the preprocessing stages (a correspondence file is made from the two when missing)."""

    landmarker: Path
    morphable: Path
    correspondence: Path
    kind: str = "auto"


def ensure_correspondence(models: PreprocessModels) -> Path:
    if not models.correspondence.is_file():
        correspondence.run(models.morphable, models.landmarker, models.correspondence, kind=models.kind)
    return models.correspondence


def preprocess(
    video: str | Path, out_dir: str | Path, models: PreprocessModels, cfg: dict[str, Any] | None = None
) -> Path:
    """Run every preprocessing stage on `video`; returns `out_dir/tracking.h5`. `cfg`: the workflow's config sections
    (`track`, `crop`, `fit`, `gaze`, `qc`), missing ones take their defaults."""
    cfg = cfg or {}
    video, out = Path(video), Path(out_dir)
    ingest_dir = out / "ingest"
    probe = ingest_dir / "probe.json"
    ingest.run(video, probe, ingest_dir / "audio.wav")
    track.run(video, probe, models.landmarker, out / "track.h5", video=out.name, cfg=cfg.get("track", {}))
    crop.run(out / "track.h5", out / "crop.h5", cfg=cfg.get("crop", {}))
    corr = ensure_correspondence(models)
    fit.run(
        out / "crop.h5",
        out / "track.h5",
        models.morphable,
        corr,
        out / "fit.h5",
        cfg=cfg.get("fit", {}),
        kind=models.kind,
    )
    gaze.run(
        out / "crop.h5", out / "fit.h5", models.morphable, out / "gaze.h5", cfg=cfg.get("gaze", {}), kind=models.kind
    )
    files = {s: out / f"{s}.h5" for s in ("track", "crop", "fit", "gaze")}
    assemble.run(video, probe, files, out / "tracking.h5")
    qc.run(
        out / "tracking.h5",
        models.morphable,
        out / "qc" / "contact_sheet.png",
        out / "qc" / "stats.json",
        cfg=cfg.get("qc", {}),
        kind=models.kind,
    )
    return out / "tracking.h5"


def models_from_config(config: dict[str, Any], base_dir: str | Path, correspondence: str | Path) -> PreprocessModels:
    """The workflow config's `models:` paths (relative ones taken from `base_dir`, where Snakemake runs)."""
    models = config.get("models") or {}
    resolve = lambda p: p if Path(p).is_absolute() else Path(base_dir) / p  # noqa: E731
    return PreprocessModels(
        resolve(Path(models["face_landmarker"])),
        resolve(Path(models["morphable_model"])),
        Path(correspondence),
        models.get("morphable_model_kind", "auto"),
    )
