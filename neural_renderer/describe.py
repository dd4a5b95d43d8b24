"""What is inside a result file (`portrait inspect`): a schema-aware summary of any HDF5 the pipeline writes, and
of a renderer's or audio model's `model.pt`.

HDF5: the stage (root attribute `stage`) selects its `StageSchema`, so every dataset is listed with its declared
unit and meaning and checked against its declared dtype and symbolic shape; per-frame arrays get validity counts
(finite frames, or true flags) and each stage a few QC figures. `tracking.h5` is described group by group with
the merged stages' schemas, and its QC figures are those of `qc/stats.json` (`qc.tracking_stats`). Large arrays
(the frames) are never read. Files are opened through `storage` (`open_h5`), the one owner of h5py. Models are
loaded with `torch.load(weights_only=True)`; nothing is executed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.errors import PipelineInputError
from neural_renderer.qc import landmark_jitter, second_difference_jitter, tracking_stats
from neural_renderer.storage.h5io import dataset_names, is_hdf5, open_h5
from neural_renderer.storage.schema import COMMON_ATTRS, MERGED_STAGES, STAGES, DatasetSpec
from neural_renderer.torch_files import load_error_reason

PROVENANCE = ("video", "source_path", "source_sha256", "software_version", "schema_version", "created_utc")
READ_LIMIT = 64 * 2**20  # bytes: per-frame arrays larger than this (frames) are not read for validity counts


def describe(path: str | Path) -> dict[str, Any]:
    """Summary of a result file as plain JSON-able data; PipelineInputError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(path, "file not found")
    if is_hdf5(path):
        return describe_h5(path)
    if path.suffix.lower() in (".pt", ".pth"):
        return describe_model(path)
    raise PipelineInputError(path, "not a file the pipeline writes (expected an HDF5 result file or a model.pt)")


def _value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _stats(x: np.ndarray) -> dict[str, float] | None:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    return {
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "p95": float(np.percentile(x, 95)),
        "max": float(x.max()),
    }


def _dataset(name: str, ds: Any, spec: DatasetSpec | None, dims: dict[str, int]) -> dict[str, Any]:
    dtype = "str" if ds.dtype.kind == "O" else str(ds.dtype)
    entry: dict[str, Any] = {"name": name, "dtype": dtype, "shape": list(ds.shape)}
    if spec is None:
        entry.update(unit="", meaning="(not in the schema)")
        return entry
    entry.update(unit=spec.unit, meaning=spec.description)
    try:
        spec.check(name, ds, dims)
    except ValueError as exc:
        entry["schema_error"] = str(exc)
    if spec.per_frame and ds.ndim >= 1 and ds.size * ds.dtype.itemsize <= READ_LIMIT:
        if ds.dtype == np.bool_:
            entry["valid"] = {"true": int(np.count_nonzero(ds[()])), "of": int(ds.shape[0])}
        elif ds.dtype.kind == "f":
            a = ds[()].reshape(ds.shape[0], -1)
            entry["valid"] = {"finite_frames": int(np.isfinite(a).all(1).sum()), "of": int(ds.shape[0])}
    return entry


def _group(g: Any, stage: str, prefix: str = "") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Datasets (schema order first, then any others) and the stage's own attributes with their meanings."""
    schema = STAGES[stage]
    dims: dict[str, int] = {}
    extra = [n for n in dataset_names(g) if n not in schema.datasets]
    names = [n for n in schema.datasets if n in g] + extra
    datasets = [_dataset(prefix + n, g[n], schema.datasets.get(n), dims) for n in names]
    missing = [n for n, spec in schema.datasets.items() if n not in g and not spec.optional]
    if missing:
        datasets += [{"name": prefix + n, "schema_error": "missing"} for n in missing]
    datasets += [
        {"name": prefix + n, "absent": f"optional, not in this file: {spec.description}"}
        for n, spec in schema.datasets.items()
        if n not in g and spec.optional
    ]
    attrs = {k: {"value": _value(g.attrs[k]), "meaning": m} for k, m in schema.attrs.items() if k in g.attrs}
    return datasets, attrs


def describe_h5(path: str | Path) -> dict[str, Any]:
    with open_h5(path) as f:
        stage = _value(f.attrs.get("stage"))
        if stage not in STAGES:
            raise PipelineInputError(
                path, f"not a file the pipeline writes (stage attribute {stage!r}; known: {sorted(STAGES)})"
            )
        schema = STAGES[stage]
        out: dict[str, Any] = {"file": str(path), "kind": "hdf5", "stage": stage, "description": schema.description}
        out["provenance"] = {k: _value(f.attrs[k]) for k in PROVENANCE if k in f.attrs}
        if "stage_config" in f.attrs:
            try:
                out["provenance"]["config"] = json.loads(_value(f.attrs["stage_config"]))
            except ValueError:
                out["provenance"]["config"] = _value(f.attrs["stage_config"])
        out["provenance_missing"] = [k for k in COMMON_ATTRS if k not in f.attrs]
        datasets, attrs = _group(f, stage)
        if stage == "tracking":
            for sub in MERGED_STAGES:
                if sub in f:
                    d, a = _group(f[sub], sub, prefix=f"{sub}/")
                    datasets += d
                    attrs.update({f"{sub}/{k}": v for k, v in a.items()})
                else:
                    datasets.append({"name": f"{sub}/", "schema_error": "missing group"})
        out["attributes"] = attrs
        out["datasets"] = datasets
        out["qc"] = _qc(f, stage)
    return out


def _qc(f: Any, stage: str) -> dict[str, Any]:
    """A few figures a person checks first, per stage."""

    def get(name):
        return f[name][()] if name in f else None

    inputs = ("crop/valid", "crop/landmarks", "crop/boxes", "fit/reprojection_error_px")
    if stage == "tracking" and all(k in f for k in inputs):
        qc = tracking_stats(*(get(k) for k in inputs), int(f.attrs.get("resolution", 0)))
        if "gaze/valid" in f:
            qc["gaze_valid_frames"] = int(np.count_nonzero(get("gaze/valid")))
        return qc
    if stage == "track" and "valid" in f:
        valid = get("valid")
        return {
            "n_frames": int(len(valid)),
            "n_valid": int(valid.sum()),
            "detection_rate": float(valid.mean()) if len(valid) else 0.0,
        }
    if stage == "crop" and "valid" in f:
        valid = get("valid")
        return {
            "n_frames": int(len(valid)),
            "n_valid": int(valid.sum()),
            "landmark_jitter_px": _stats(landmark_jitter(get("landmarks"), valid)),
            "box_jitter_px": _stats(second_difference_jitter(get("boxes"))),
        }
    if stage == "fit" and "reprojection_error_px" in f:
        return {
            "n_frames": int(len(get("valid"))),
            "n_valid": int(get("valid").sum()),
            "reprojection_error_px": _stats(get("reprojection_error_px")),
        }
    if stage == "gaze" and "head_pitch_yaw_deg" in f:
        g = get("head_pitch_yaw_deg")
        ok = np.isfinite(g).all(1)
        return {
            "n_frames": int(len(g)),
            "n_valid": int(get("valid").sum()),
            "head_pitch_deg": _stats(g[ok, 0]),
            "head_yaw_deg": _stats(g[ok, 1]),
        }
    if stage == "rendered" and "frames" in f:
        return {
            "n_frames": int(f["frames"].shape[0]),
            "resolution": int(f["frames"].shape[1]),
            **{k: _value(f.attrs[k]) for k in ("kind", "driver", "target", "fps") if k in f.attrs},
        }
    if stage == "features" and "frame_index" in f:
        qc: dict[str, Any] = {"n_frames": int(len(f["frame_index"]))}
        for flag in ("identity_valid", "motion_valid"):
            if flag in f:
                qc[flag] = int(np.count_nonzero(get(flag)))
        if "i3d" in f:
            qc["i3d_clips"] = int(f["i3d"].shape[0])
        return qc
    return {}


def _range(idx: Any) -> dict[str, Any]:
    idx = np.asarray(idx)
    if len(idx) == 0:
        return {"count": 0, "first": None, "last": None}
    return {"count": int(len(idx)), "first": int(idx[0]), "last": int(idx[-1])}


def describe_model(path: str | Path) -> dict[str, Any]:
    import torch

    from neural_renderer.audio.train import FORMAT as AUDIO_FORMAT
    from neural_renderer.renderer.train import MODEL_FORMAT

    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is "not our model file"
        reason = load_error_reason(exc)
        raise PipelineInputError(path, f"not a model file the pipeline writes (cannot load: {reason})") from None
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if fmt not in (MODEL_FORMAT, AUDIO_FORMAT):
        raise PipelineInputError(
            path, f"not a model file the pipeline writes (format {fmt!r}; known: {MODEL_FORMAT}, {AUDIO_FORMAT})"
        )
    cfg = blob.get("config", {})
    names = [str(n) for n in blob.get("expression_names", [])]
    out: dict[str, Any] = {
        "file": str(path),
        "format": fmt,
        "fps": float(blob.get("fps", 0.0)),
        "split": {"train": _range(blob["train_idx"]), "test": _range(blob["test_idx"])},
        "n_expression": int(blob["n_expression"]),
        "expression_names": names,
    }
    if fmt == MODEL_FORMAT:
        out.update(
            kind="renderer",
            preset=dict(blob.get("preset", {})),
            iteration=int(blob["iteration"]),
            iterations_configured=cfg.get("train", {}).get("iterations"),
            resolution=int(blob["resolution"]),
            crop_resolution=int(blob.get("crop_resolution", 0)),
            variant=cfg.get("model", {}).get("variant"),
            test_latent=cfg.get("render", {}).get("test_latent"),
        )
    else:
        metrics = blob.get("metrics", {})
        out.update(
            kind="audio",
            preset=dict(metrics.get("preset", {})),
            iteration=metrics.get("iterations"),
            iterations_configured=cfg.get("train", {}).get("iterations"),
            held_out=metrics.get("test"),
            tracking_sha256=blob.get("tracking_sha256"),
        )
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    if v is None:
        return "-"
    return str(v)


def to_text(d: dict[str, Any]) -> str:
    """The summary for a person: short sections, one item per line."""
    if "stage" in d:
        lines = [f"{d['file']}: stage {d['stage']!r}: {d['description']}", "provenance:"]
        prov = dict(d["provenance"])
        config = prov.pop("config", None)
        lines += [f"  {k}: {v}" for k, v in prov.items()]
        lines.append(f"  config: {json.dumps(config, sort_keys=True) if config is not None else '-'}")
        if d["provenance_missing"]:
            lines.append(f"  missing attributes: {d['provenance_missing']}")
        if d["attributes"]:
            lines.append("attributes:")
            lines += [f"  {k}: {_fmt(a['value'])}  ({a['meaning']})" for k, a in d["attributes"].items()]
        lines.append("datasets:")
        for ds in d["datasets"]:
            if "absent" in ds:
                lines.append(f"  {ds['name']}: absent ({ds['absent']})")
                continue
            if "shape" not in ds:
                lines.append(f"  {ds['name']}: SCHEMA ERROR {ds['schema_error']}")
                continue
            shape = "(" + ", ".join(map(str, ds["shape"])) + ")"
            valid = ds.get("valid")
            count = ""
            if valid:
                what = "true" if "true" in valid else "finite"
                count = f"  [{valid.get('true', valid.get('finite_frames'))}/{valid['of']} {what}]"
            unit = f" [{ds['unit']}]" if ds["unit"] else ""
            error = f"  SCHEMA ERROR {ds['schema_error']}" if "schema_error" in ds else ""
            lines.append(f"  {ds['name']}: {ds['dtype']} {shape}{unit}{count}  {ds['meaning']}{error}")
        if d["qc"]:
            lines.append("qc:")
            lines += [f"  {k}: {_fmt(v)}" for k, v in d["qc"].items()]
        return "\n".join(lines)
    split, preset = d["split"], d["preset"]
    lines = [
        f"{d['file']}: {d['kind']} model ({d['format']})",
        f"  preset: {preset.get('name', '-')} (requested {preset.get('requested', '-')}: {preset.get('reason', '-')})",
        f"  iterations: {_fmt(d['iteration'])} of {_fmt(d['iterations_configured'])} configured",
    ]
    if d["kind"] == "renderer":
        lines.append(
            f"  resolution: {d['resolution']} px (crop {d['crop_resolution']} px), "
            f"variant {_fmt(d['variant'])}, test latent {_fmt(d['test_latent'])}"
        )
    else:
        lines.append(f"  held-out: {_fmt(d['held_out'])}")
    lines += [
        f"  split: train {split['train']['count']} frames ({split['train']['first']}..{split['train']['last']}), "
        f"test {split['test']['count']} frames ({split['test']['first']}..{split['test']['last']}), {d['fps']:.4g} fps",
        f"  expression basis: {d['n_expression']} coefficients: {' '.join(d['expression_names']) or '(unnamed)'}",
    ]
    return "\n".join(lines)
