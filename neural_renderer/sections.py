"""Every key of the workflow configuration and the one place its default is written.

Problem: a default written twice drifts. Before this table the defaults lived in `config.yaml`, in the schema's
`default:` entries and in the dataclasses, and 22 call sites added a `.get(key, default)` of their own; some disagreed
(`fit.device`, `renderer.enabled`). Now:

- the **dataclasses** hold every default: each stage section's config class (registered in `SECTIONS` below) and
  `WorkflowConfig` for the top-level keys;
- **`config.schema.yaml`** holds names, types, ranges and descriptions, and no defaults (`tests/test_config.py`
  checks that its keys are the dataclasses' fields and that every default passes it);
- **`config.yaml`** holds what a user is expected to change;
- the merged configuration keeps the stage sections **sparse** (only what `config.yaml` and the overrides set): the
  presets of the trained networks lie *between* the defaults and the user's keys (`neural_renderer.presets`), so
  filling the defaults in would override them. Code reads a section through its dataclass (`build_dataclass`) or
  `effective_section`, never through a fallback of its own.

`explain` lists the effective value of every key for one video with where it came from (`portrait config`), and
`docs/CONFIG.md` is generated from the same table (`python docs/generate.py`).

Classes are imported on demand: the Snakefile's parse needs only the workflow keys and a few sections, not torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

from neural_renderer.config import STAGE_SECTIONS, deep_merge, stage_config, validate_config

# section -> "module:Class" of its typed config (imported when first needed)
SECTIONS: dict[str, str] = {
    "ingest": "neural_renderer.video.config:IngestConfig",
    "track": "neural_renderer.tracking.config:TrackConfig",
    "crop": "neural_renderer.crop.config:CropConfig",
    "fit": "neural_renderer.fitting.config:FitConfig",
    "gaze": "neural_renderer.fitting.config:GazeConfig",
    "qc": "neural_renderer.qc:QcConfig",
    "renderer": "neural_renderer.renderer.config:RendererConfig",
    "reenact": "neural_renderer.reenact.config:ReenactConfig",
    "audio": "neural_renderer.audio.config:AudioConfig",
    "metrics": "neural_renderer.metrics.config:MetricsConfig",
}
assert tuple(SECTIONS) == STAGE_SECTIONS  # one list of sections (config.py keeps the names, free of imports)


@dataclass(frozen=True)
class ModelsConfig:
    """Model files; missing ones under resources/ are downloaded and verified by rules/models.smk."""

    face_landmarker: str = "resources/models/face_landmarker.task"
    morphable_model: str = "resources/models/ict_face_light_face.npz"
    morphable_model_kind: str = "auto"  # auto | ict | flame | bfm (FLAME/BFM: point morphable_model at your file)


@dataclass(frozen=True)
class WorkflowConfig:
    """The top-level keys: where videos, audio clips, results and models are, and the ffmpeg binary."""

    raw_dir: str = "data/raw"
    audio_dir: str = "data/audio"
    results_dir: str = "results"
    ffmpeg: str | None = None  # null = the binary shipped by imageio-ffmpeg
    models: ModelsConfig = field(default_factory=ModelsConfig)


def section_class(section: str) -> type:
    """The dataclass of a stage section (its fields are the section's keys, their defaults the only defaults)."""
    module, name = SECTIONS[section].split(":")
    return getattr(importlib.import_module(module), name)


def section_defaults(section: str) -> dict[str, Any]:
    """A section's defaults as plain YAML values (tuples as lists)."""
    return _plain(dataclasses.asdict(section_class(section)()))


def workflow_defaults() -> dict[str, Any]:
    return _plain(dataclasses.asdict(WorkflowConfig()))


def complete_config(config: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Validate `config` (in place, e.g. Snakemake's) and fill the top-level keys' defaults; stage sections become
    `{}` when absent and otherwise stay as set (see the module docstring). `source` names the file(s) in errors."""
    validate_config(config, source=source)
    for key, value in deep_merge(workflow_defaults(), config).items():
        config[key] = value
    for section in STAGE_SECTIONS:
        config[section] = config.get(section) or {}
    config["overrides"] = config.get("overrides") or {}
    return config


def effective_section(config: dict[str, Any], section: str, video: str | None = None) -> dict[str, Any]:
    """Defaults <- config.yaml <- the video's overrides, for one section (presets not applied: see `explain`)."""
    return deep_merge(section_defaults(section), stage_config(config, section, video))


def explain(config: dict[str, Any], video: str | None = None, auto_preset: str | None = None) -> list[Row]:
    """Every key's effective value for `video`, and where it came from: default, preset NAME, config, override.

    `config` is the file as the user wrote it (validated, not completed: a filled-in key would read as set).
    `auto_preset`: what `preset: auto` resolves to where the job would run (seed | preview; None: not shown). The
    preset's values lie between the defaults and the user's keys, as they do in the job.
    """
    rows = []
    for key, default in _leaves(workflow_defaults()):
        found, value = _lookup(config, key)
        rows.append(Row(".".join(key), value if found else default, "config" if found else "default"))
    for section in STAGE_SECTIONS:
        preset = _preset_values(section, effective_section(config, section, video).get("preset"), auto_preset)
        user = (config.get(section) or {}, ((config.get("overrides") or {}).get(video or "") or {}).get(section, {}))
        for key, default in _leaves(section_defaults(section), (section,)):
            value, source = default, "default"
            for layer, name in ((preset[1], f"preset {preset[0]}"), (user[0], "config"), (user[1], "override")):
                found, got = _lookup(layer, key[1:])
                if found:
                    value, source = got, name
            rows.append(Row(".".join(key), value, source))
    return rows


@dataclass(frozen=True)
class Row:
    key: str  # dotted path, e.g. crop.resolution
    value: Any
    source: str  # default | preset NAME | config | override


def _preset_values(section: str, requested: str | None, auto: str | None) -> tuple[str | None, dict[str, Any]]:
    """(name, values) of the preset a section with presets runs; (None, {}) for the others or when unknown."""
    name = auto if requested == "auto" else requested
    if name is None:
        return None, {}
    module = importlib.import_module(SECTIONS[section].split(":")[0])
    return name, module.PRESETS[name]


def _leaves(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every non-dict value; an empty dict default (none today) would be a leaf too."""
    out = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, (*prefix, key))
        else:
            out.append(((*prefix, key), value))
    return out


def _lookup(values: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return False, None
        values = values[key]
    return True, values


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- docs/CONFIG.md: every key with its type, default, unit and meaning (`python -m neural_renderer.sections`) ---


def field_notes(cls: type) -> dict[str, str]:
    """A config dataclass's own words on each field: its attribute docstring, else the comment on its line, else
    the comment lines just above it (the three styles the config modules use)."""
    import ast
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    body = ast.parse(source).body[0].body
    notes: dict[str, str] = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        after = body[i + 1] if i + 1 < len(body) else None
        if isinstance(after, ast.Expr) and isinstance(getattr(after, "value", None), ast.Constant):
            text = str(after.value.value)
        else:
            text = " ".join(_comment(lines[n]) for n in range(node.lineno - 1, node.end_lineno) if _comment(lines[n]))
            if not text:
                above = []
                n = node.lineno - 2
                while n >= 0 and lines[n].strip().startswith("#"):
                    above.insert(0, lines[n].strip().lstrip("#").strip())
                    n -= 1
                text = " ".join(above)
        notes[node.target.id] = " ".join(text.split())
    return notes


def _comment(line: str) -> str:
    code, sep, comment = line.partition("  # ")
    return comment.strip() if sep and not code.strip().startswith("#") else ""


PIPE = "\\|"  # a literal | inside a Markdown table cell


def markdown(schema_path: str | None = None) -> str:
    """docs/CONFIG.md: one table per section, from the dataclasses (defaults, notes) and the schema (types, units,
    descriptions)."""
    import json

    import yaml

    from neural_renderer.config import SCHEMA_PATH

    schema = yaml.safe_load(open(schema_path or SCHEMA_PATH).read())
    out = [
        "# Configuration keys",
        "",
        "Generated by `python -m neural_renderer.sections > docs/CONFIG.md` from the config dataclasses (the only",
        "place a default is written: `neural_renderer/sections.py` lists them) and `config.schema.yaml` (types,",
        "ranges, units); `tests/test_config.py` keeps it current. `config.yaml` sets what users usually change; any",
        "key below can be set there, or per video under `overrides: {video: {section: {...}}}`. `portrait config",
        "--video NAME` prints the value each key takes for a video and where it comes from. The renderer's and the",
        "audio model's `preset` (auto: `seed` on a GPU, `preview` on a CPU) changes some defaults below; the keys you",
        "set win over it.",
    ]
    tables = [("top level", WorkflowConfig, schema, "")]
    tables += [(name, section_class(name), schema["$defs"][name], f"{name}.") for name in STAGE_SECTIONS]
    for title, cls, node, prefix in tables:
        out += ["", f"## {title}", "", "| key | type | default | unit | meaning |", "|---|---|---|---|---|"]
        for key, default, prop, note in _rows(cls, node, prefix):
            prop = schema["$defs"][prop["$ref"].split("/")[-1]] | prop if "$ref" in prop else prop
            meaning = (prop.get("description") or note).replace("|", PIPE)
            kind = f" {PIPE} ".join(map(str, prop["enum"])) if "enum" in prop else _type(prop)
            value = json.dumps(_plain(default))
            out.append(f"| `{key}` | {kind} | `{value}` | {prop.get('unit', '')} | {meaning} |")
    return "\n".join(out) + "\n"


def _rows(cls: type, node: dict, prefix: str):
    notes = field_notes(cls)
    props = node["properties"]
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        prop = props[f.name]
        if dataclasses.is_dataclass(default):
            yield from _rows(type(default), prop, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", default, prop, notes.get(f.name, "")


def _type(prop: dict) -> str:
    """The schema's type and range, e.g. `number, > 0` or `integer or null, >= 1`."""
    if "const" in prop:
        return f"always {prop['const']}"
    kinds = prop.get("type", "")
    text = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    ranges = [f"{op} {prop[k]}" for k, op in bounds.items() if k in prop]
    return ", ".join([text, *ranges]) if ranges else text


if __name__ == "__main__":
    print(markdown(), end="")
