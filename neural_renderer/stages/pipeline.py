"""One video through the preprocessing stages without Snakemake (`portrait track`, benchmarks, quick looks).

The same stage runners the rules call, in the DAG's order (ingest -> track -> crop -> fit -> gaze -> assemble -> qc)
and with the DAG's file names under `out_dir`, so the results are those a `snakemake` run would write. `setup`
resolves what the workflow would: the config file's sections with the video's overrides, and its model paths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neural_renderer.errors import PipelineInputError
from neural_renderer.stages import assemble, correspondence, crop, fit, gaze, ingest, qc, track


@dataclass(frozen=True)
class PreprocessModels:
    """The model files of the preprocessing stages (a correspondence file is made from the two when missing)."""

    landmarker: Path
    morphable: Path
    correspondence: Path
    kind: str  # the morphable model loader's kind (models.morphable_model_kind)


def ensure_correspondence(models: PreprocessModels) -> Path:
    if not models.correspondence.is_file():
        correspondence.run(models.morphable, models.landmarker, models.correspondence, kind=models.kind)
    return models.correspondence


SECTIONS = ("ingest", "track", "crop", "fit", "gaze", "qc")


def preprocess(
    video: str | Path, out_dir: str | Path, models: PreprocessModels, cfg: dict[str, Any] | None = None
) -> Path:
    """Run every preprocessing stage on `video`; returns `out_dir/tracking.h5`. `cfg`: the workflow's config sections
    (`SECTIONS`); a missing one is empty, so its dataclass's defaults apply."""
    cfg = {section: (cfg or {}).get(section) or {} for section in SECTIONS}
    video, out = Path(video), Path(out_dir)
    ingest_dir = out / "ingest"
    probe = ingest_dir / "probe.json"
    ingest.run(video, probe, ingest_dir / "audio.wav", cfg=cfg["ingest"])
    track.run(video, probe, models.landmarker, out / "track.h5", video=out.name, cfg=cfg["track"])
    crop.run(out / "track.h5", out / "crop.h5", cfg=cfg["crop"])
    corr = ensure_correspondence(models)
    fit.run(
        out / "crop.h5",
        out / "track.h5",
        models.morphable,
        corr,
        out / "fit.h5",
        cfg=cfg["fit"],
        kind=models.kind,
    )
    gaze.run(out / "crop.h5", out / "fit.h5", models.morphable, out / "gaze.h5", cfg=cfg["gaze"], kind=models.kind)
    files = {s: out / f"{s}.h5" for s in ("track", "crop", "fit", "gaze")}
    assemble.run(video, probe, files, out / "tracking.h5")
    qc.run(
        out / "tracking.h5",
        models.morphable,
        out / "qc" / "contact_sheet.png",
        out / "qc" / "stats.json",
        cfg=cfg["qc"],
        kind=models.kind,
    )
    return out / "tracking.h5"


def models_from_config(config: dict[str, Any], base_dir: str | Path, correspondence: str | Path) -> PreprocessModels:
    """The workflow config's `models:` paths (relative ones taken from `base_dir`, where Snakemake runs); `config`
    as `load_config` returns it (its `models:` complete)."""
    models = config["models"]
    resolve = lambda p: p if Path(p).is_absolute() else Path(base_dir) / p  # noqa: E731
    return PreprocessModels(
        resolve(Path(models["face_landmarker"])),
        resolve(Path(models["morphable_model"])),
        Path(correspondence),
        models["morphable_model_kind"],
    )


@dataclass(frozen=True)
class Overrides:
    """What `portrait track` may set over the config file (None: as configured)."""

    landmarker: str | None = None
    morphable: str | None = None
    kind: str | None = None
    correspondence: str | None = None
    resolution: int | None = None
    device: str | None = None


def setup(config_path: str | Path, out_dir: str | Path, given: Overrides) -> tuple[PreprocessModels, dict[str, Any]]:
    """The models and config sections a workflow run of the config file would use for the video whose results go
    to `out_dir` (per-video overrides by its folder name), with `given` on top. Model files must exist.

    The correspondence file is the workflow's (`{results_dir}/_models/correspondence.npz` beside the config file)
    when it exists, else one made in `out_dir`.
    """
    from neural_renderer.config import load_config, stage_config

    config_path, out = Path(config_path), Path(out_dir)
    config = load_config(config_path)
    base = config_path.resolve().parent
    workflow_corr = base / config["results_dir"] / "_models" / "correspondence.npz"
    corr = given.correspondence or (workflow_corr if workflow_corr.is_file() else out / "correspondence.npz")
    models = models_from_config(config, base, corr)
    models = dataclasses.replace(
        models,
        landmarker=Path(given.landmarker or models.landmarker),
        morphable=Path(given.morphable or models.morphable),
        kind=given.kind or models.kind,
    )
    for path, option in ((models.landmarker, "--landmarker"), (models.morphable, "--morphable")):
        if not path.is_file():
            raise PipelineInputError(
                path,
                f"model file not found: pass {option}, or fetch the workflow's models with "
                "`snakemake --cores 1 resources/models/face_landmarker.task "
                "resources/models/ict_face_light_face.npz`",
            )
    cfg = {s: stage_config(config, s, out.name) for s in SECTIONS}
    if given.resolution:
        cfg["crop"]["resolution"] = given.resolution
    if given.device:
        cfg["fit"]["device"] = given.device
    return models, cfg
