"""Workflow configuration: schema validation, per-video overrides and typed stage configs.

The YAML file is validated against `config.schema.yaml` (the same call Snakemake uses), so a wrong value fails before
any job starts, with the offending key in the message. The schema holds no defaults: the config dataclasses do,
registered in `neural_renderer/sections.py`, which also fills the top-level keys (`complete_config`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml

from neural_renderer.errors import PipelineInputError

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "config.schema.yaml"
STAGE_SECTIONS = ("ingest", "track", "crop", "fit", "gaze", "qc", "renderer", "reenact", "audio", "metrics")

T = TypeVar("T")


def validate_config(
    config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH, source: str | Path | None = None
) -> dict[str, Any]:
    """Validate and return `config` (unchanged); raise PipelineInputError naming the file (`source`, the config
    file, when known) and the offending key, e.g. `config.yaml: crop.resolution: 300 is not one of [256, 512, 1024]`."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise PipelineInputError(source or "configuration", f"invalid configuration: {where}: {error.message}")
    return check_overrides(config)


def check_overrides(config: dict[str, Any]) -> dict[str, Any]:
    """The check beyond the JSON schema: overrides name stage sections only."""
    unknown = [
        (video, key)
        for video, sections in (config.get("overrides") or {}).items()
        for key in sections
        if key not in STAGE_SECTIONS
    ]
    if unknown:
        raise PipelineInputError(
            None, f"invalid configuration: overrides name unknown stage sections {unknown}; allowed {STAGE_SECTIONS}"
        )
    return config


def read_config(path: str | Path) -> dict[str, Any]:
    """The file as the user wrote it, validated (nothing filled in: `portrait config` tells set keys from defaults)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineInputError(path, f"cannot read configuration ({exc})") from None
    if not isinstance(config, dict):
        raise PipelineInputError(path, "cannot read configuration (not a mapping of keys to values)")
    return validate_config(config, source=path)


def load_config(path: str | Path) -> dict[str, Any]:
    """The configuration a run uses: `read_config`, with the top-level keys' defaults filled in."""
    from neural_renderer.sections import complete_config

    return complete_config(read_config(path), source=str(path))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def stage_config(config: dict[str, Any], stage: str, video: str | None = None) -> dict[str, Any]:
    """The stage's section with the video's overrides applied (a plain dict: it becomes a rule's params)."""
    if stage not in STAGE_SECTIONS:
        raise KeyError(f"unknown stage section {stage!r}")
    section = config.get(stage) or {}
    override = (config.get("overrides") or {}).get(video or "", {}).get(stage, {})
    return deep_merge(section, override)


def build_dataclass(cls: type[T], values: dict[str, Any]) -> T:
    """Instantiate a (possibly nested) config dataclass from a dict, rejecting unknown keys by name."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise PipelineInputError(None, f"unknown {cls.__name__} option(s) {sorted(unknown)}; known: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    hints = _resolved_hints(cls)
    for name, value in values.items():
        hint = hints.get(name)
        if isinstance(value, dict) and isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[name] = build_dataclass(hint, value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise PipelineInputError(None, f"invalid {cls.__name__}: {exc}") from None


def _resolved_hints(cls: type) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable forward refs: fall back to no nesting
        return {}


def to_json(values: Any) -> str:
    """Canonical JSON of a config (dataclass or dict) for provenance attributes."""
    if dataclasses.is_dataclass(values):
        values = dataclasses.asdict(values)
    return json.dumps(values, sort_keys=True, default=str)
