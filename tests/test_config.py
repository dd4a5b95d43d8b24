"""Configuration: schema validation with clear errors, per-video overrides, typed configs in sync with the schema."""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil

import jsonschema
import pytest
import yaml

from neural_renderer.config import (
    STAGE_SECTIONS,
    build_dataclass,
    load_config,
    read_config,
    stage_config,
    validate_config,
)
from neural_renderer.errors import PipelineInputError
from neural_renderer.qc import QcConfig
from neural_renderer.sections import (
    WorkflowConfig,
    effective_section,
    explain,
    markdown,
    section_class,
    section_defaults,
    workflow_defaults,
)
from neural_renderer.stages.code_version import code_hash, stage_files


@pytest.fixture()
def config(repo_dir):
    return load_config(repo_dir / "config.yaml")


def test_shipped_config_validates_and_defaults_are_filled(config):
    assert config["crop"]["resolution"] in (256, 512, 1024)
    assert config["results_dir"] == "results"  # top-level defaults come from WorkflowConfig
    assert config["models"]["morphable_model_kind"] == "auto"


@pytest.mark.parametrize(
    "path, value, needle",
    [
        (("crop", "resolution"), 300, "resolution"),
        (("track", "min_detection_confidence"), 1.5, "min_detection_confidence"),
        (("qc", "n_frames"), 0, "n_frames"),
        (("crop", "no_such_option"), 1, "no_such_option"),
        (("models", "morphable_model_kind"), "sfm", "morphable_model_kind"),
    ],
)
def test_invalid_values_are_rejected_naming_the_key(config, path, value, needle):
    bad = copy.deepcopy(config)
    bad[path[0]][path[1]] = value
    with pytest.raises(PipelineInputError, match=needle):
        validate_config(bad)


def test_unreadable_config_file(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("crop: [unclosed")
    with pytest.raises(PipelineInputError, match="cannot read configuration"):
        load_config(bad)


def test_overrides_apply_to_one_video_only(config):
    config = copy.deepcopy(config)
    config["overrides"] = {"a": {"crop": {"resolution": 1024}}}
    validate_config(config)
    assert stage_config(config, "crop", "a")["resolution"] == 1024
    assert stage_config(config, "crop", "b")["resolution"] == config["crop"]["resolution"]


def test_overrides_are_validated(config):
    config = copy.deepcopy(config)
    config["overrides"] = {"a": {"crop": {"resolution": 3}}}
    with pytest.raises(PipelineInputError, match="resolution"):
        validate_config(config)


def _schema_props(repo_dir, section):
    schema = yaml.safe_load((repo_dir / "config.schema.yaml").read_text())
    return set(schema["$defs"][section]["properties"])


def test_schema_defaults_build_valid_dataclasses(config):
    assert build_dataclass(QcConfig, config["qc"]) == QcConfig(**config["qc"])
    with pytest.raises(PipelineInputError, match="unknown QcConfig option"):
        build_dataclass(QcConfig, {"n_frame": 3})


def hashed_stages(repo_dir) -> list[str]:
    """Every stage a rule passes to code_hash."""
    rules = "".join(smk.read_text() for smk in (repo_dir / "rules").glob("*.smk"))
    return sorted(set(re.findall(r'code_hash\("(\w+)"\)', rules)))


def test_stage_files_are_the_closure_of_the_real_imports(repo_dir):
    def rel(stage):
        return {p.relative_to(repo_dir).as_posix() for p in stage_files(stage)}

    crop, qc, features, track = rel("crop"), rel("qc"), rel("metric_features"), rel("track")
    # the imports the hand-kept table had missed
    assert {"neural_renderer/config.py", "workflow_scripts/crop.py", "neural_renderer/snakemake_glue.py"} <= crop
    assert {"neural_renderer/config.py", "neural_renderer/tracking/landmarker.py"} <= qc
    assert {"neural_renderer/storage/motion.py", "neural_renderer/morphable/correspondence.py"} <= features
    assert {"neural_renderer/__init__.py", "neural_renderer/tracking/__init__.py"} <= track  # parent packages run too
    # and no more than is imported: tracking runs no crop or fitting code, crop no tracking
    assert not {p for p in track if p.startswith(("neural_renderer/crop/", "neural_renderer/fitting/"))}
    assert not {p for p in crop if p.startswith("neural_renderer/tracking/")}


def test_stage_files_follow_every_form_of_import(tmp_path):
    files = {
        "neural_renderer/__init__.py": "",
        "neural_renderer/stages/__init__.py": "",
        "neural_renderer/stages/demo.py": "from ..pkg import sub\nfrom . import helper\n",
        "neural_renderer/stages/helper.py": "def f():\n    import neural_renderer.lazy.inner\n",
        "neural_renderer/pkg/__init__.py": "from .base import X\n",
        "neural_renderer/pkg/base.py": "X = 1\n",
        "neural_renderer/pkg/sub.py": "try:\n    from neural_renderer.pkg.base import X\nexcept OSError:\n    X = 0",
        "neural_renderer/pkg/unused.py": "",
        "neural_renderer/lazy/__init__.py": "",
        "neural_renderer/lazy/inner.py": "import os\nfrom neural_renderer.errors import E\n",
        "neural_renderer/errors.py": "class E(Exception):\n    pass\n",
        "neural_renderer/other.py": "",
        "workflow_scripts/demo.py": "import sys\nfrom neural_renderer.other import thing\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = {p.relative_to(tmp_path).as_posix() for p in stage_files("demo", tmp_path)}
    assert found == set(files) - {"neural_renderer/pkg/unused.py"}


def test_code_hash_follows_logic_not_docstrings_or_comments(tmp_path, repo_dir):
    stages = hashed_stages(repo_dir)
    assert len({code_hash(stage) for stage in stages}) == len(stages)
    root = tmp_path / "repo"
    for part in ("neural_renderer", "workflow_scripts"):
        shutil.copytree(repo_dir / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))

    def hashes():
        return {stage: code_hash(stage, root) for stage in stages}

    before = hashes()
    assert before == {stage: code_hash(stage) for stage in stages}  # path-independent: the same in any checkout
    boxes = root / "neural_renderer" / "crop" / "boxes.py"
    text = boxes.read_text()
    assert text.startswith('"""')
    boxes.write_text('"""Edited docstring.\n\n' + text[3:].replace("\n\n", "\n\n# a new comment\n\n", 1) + "\n# end\n")
    assert hashes() == before
    boxes.write_text(text + "\n_EDITED = 1\n")
    changed = {stage for stage, h in hashes().items() if h != before[stage]}
    expected = {s for s in stages if boxes in stage_files(s, root)}
    assert changed == expected and {"crop", "assemble"} <= changed and "track" not in changed
    with pytest.raises(KeyError, match="unknown stage"):
        code_hash("no_such_stage")


def test_code_hash_ignores_docstrings_inside_functions_and_classes(tmp_path):
    """A docstring anywhere (function, method, nested function, class, attribute) plans nothing; a code edit next to
    it reruns the stage."""
    module = (
        '"""Module."""\n\n\n'
        "def f(x):\n"
        '    """Function doc."""\n'
        "    def inner():\n"
        '        """Inner doc."""\n'
        "        return x\n"
        "    return inner()\n\n\n"
        "class C:\n"
        '    """Class doc."""\n\n'
        "    a: int = 1\n"
        '    """Attribute doc."""\n\n'
        "    def m(self):\n"
        '        """Method doc."""\n'
        "        return self.a\n"
    )
    files = {
        "neural_renderer/__init__.py": "",
        "neural_renderer/stages/__init__.py": "",
        "neural_renderer/stages/demo.py": module,
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    demo = tmp_path / "neural_renderer" / "stages" / "demo.py"
    before = code_hash("demo", tmp_path)
    for doc in ("Function doc.", "Inner doc.", "Class doc.", "Attribute doc.", "Method doc."):
        demo.write_text(module.replace(doc, "Edited: says something else entirely."))
        assert code_hash("demo", tmp_path) == before, doc
    for code in (("return x", "return -x"), ("a: int = 1", "a: int = 2"), ("return self.a", "return self")):
        demo.write_text(module.replace(*code))
        assert code_hash("demo", tmp_path) != before, code


def _compare_nested(schema_def, cls, where):
    props = schema_def["properties"]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(props) == set(fields), where
    assert schema_def.get("additionalProperties") is False, f"{where}: typos must be rejected"
    for name, f in fields.items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            _compare_nested(props[name], type(default), f"{where}.{name}")


def _schema(repo_dir):
    return yaml.safe_load((repo_dir / "config.schema.yaml").read_text())


@pytest.mark.parametrize("section", STAGE_SECTIONS)
def test_schema_sections_match_dataclasses(repo_dir, section):
    """The dataclasses hold the defaults; the schema must know exactly their fields, nested sections included (no
    silent typos), and every default must pass it (a default the schema refuses could not be written in config.yaml)."""
    cls = section_class(section)
    schema = _schema(repo_dir)
    _compare_nested(schema["$defs"][section], cls, section)
    jsonschema.validate({section: section_defaults(section)}, schema)


def test_workflow_keys_match_their_dataclass(repo_dir):
    schema = _schema(repo_dir)
    top = {k: v for k, v in schema["properties"].items() if k not in (*STAGE_SECTIONS, "overrides")}
    _compare_nested({"properties": top, "additionalProperties": schema["additionalProperties"]}, WorkflowConfig, "/")
    jsonschema.validate(workflow_defaults(), schema)


def test_the_schema_writes_no_default(repo_dir):
    """One place per default: a `default:` in the schema would be a second one (and Snakemake would fill it in)."""

    def defaults(node, where=""):
        if isinstance(node, dict):
            found = [where] if "default" in node else []
            return found + [d for k, v in node.items() for d in defaults(v, f"{where}/{k}")]
        return []

    assert defaults(_schema(repo_dir)) == []


def test_defaults_come_from_the_dataclasses_alone(tmp_path):
    """An empty config.yaml runs on the dataclasses' defaults: the top-level keys are filled in, the stage sections
    stay empty (the presets lie between defaults and user keys) and read back through their dataclasses."""
    path = tmp_path / "config.yaml"
    path.write_text("crop: {resolution: 256}\n")
    config = load_config(path)
    assert config["results_dir"] == WorkflowConfig().results_dir
    assert config["models"]["face_landmarker"] == WorkflowConfig().models.face_landmarker
    assert config["crop"] == {"resolution": 256} and config["fit"] == {}
    assert effective_section(config, "crop")["margin"] == section_class("crop")().margin
    assert effective_section(config, "renderer")["enabled"] is False  # a config without it only preprocesses
    assert effective_section(config, "fit")["device"] == "auto"  # was "cpu" in the dataclass, "auto" elsewhere


def test_explain_names_where_each_value_comes_from(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "results_dir: out\ncrop: {resolution: 256}\nrenderer: {train: {iterations: 7}}\n"
        "overrides: {v1: {crop: {margin: 0.9}}}\n"
    )
    raw = read_config(path)
    rows = {r.key: (r.value, r.source) for r in explain(raw, "v1", auto_preset="preview")}
    assert rows["results_dir"] == ("out", "config") and rows["raw_dir"] == ("data/raw", "default")
    assert rows["crop.resolution"] == (256, "config") and rows["crop.margin"] == (0.9, "override")
    assert rows["crop.smoothing"] == ("savgol", "default")
    assert rows["renderer.train.iterations"] == (7, "config")  # the user's key wins over the preset
    assert rows["renderer.train.batch_size"] == (4, "preset preview")
    assert rows["renderer.train.lr"] == (5e-4, "default")
    other = {r.key: r for r in explain(raw, "v2")}
    assert other["crop.margin"].source == "default"  # the override is v1's alone
    assert len(rows) == len(other) > 150  # every key of every section


def test_config_doc_is_current_and_every_key_has_a_meaning(repo_dir):
    """docs/CONFIG.md is what `python -m neural_renderer.sections` prints, and no key is left unexplained."""
    text = markdown()
    assert (repo_dir / "docs" / "CONFIG.md").read_text() == text, (
        "docs/CONFIG.md is stale: python -m neural_renderer.sections > docs/CONFIG.md"
    )
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) > 150
    unexplained = [row[0] for row in rows if not row[-1].strip(" |")]
    assert unexplained == []
    assert "| `crop.resolution` | 256 \\| 512 \\| 1024 | `512` | px |" in text


def _leaves(values, prefix=()):
    for key, value in values.items():
        if isinstance(value, dict) and value and key != "overrides":
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


# What the shipped config.yaml decides rather than restates: the demo trains and evaluates (off by default, so a
# config without these keys only preprocesses).
SHIPPED_CHOICES = {"renderer.enabled": (True, False), "metrics.enabled": (True, False)}


def test_config_yaml_shows_the_defaults_it_names(repo_dir):
    """config.yaml shows the keys users change at their defaults; were a dataclass default changed and config.yaml
    not, the file would silently override the new default (the drift this layout exists to stop)."""
    raw = read_config(repo_dir / "config.yaml")
    defaults = {
        key: value
        for key, value in _leaves({**workflow_defaults(), **{s: section_defaults(s) for s in STAGE_SECTIONS}})
    }
    shown = dict(_leaves({k: v for k, v in raw.items() if k != "overrides"}))
    assert shown, "config.yaml names no key"
    differ = {
        ".".join(k): (v, defaults.get(k, "<no such key>")) for k, v in shown.items() if defaults.get(k, object()) != v
    }
    assert differ == SHIPPED_CHOICES


def test_config_field_notes_read_the_three_comment_styles():
    from neural_renderer.fitting.config import FitConfig
    from neural_renderer.sections import field_notes

    fit = field_notes(FitConfig)  # attribute docstrings
    assert fit["tolerance"].startswith("stop a stage when an accepted step lowers the cost")
    renderer = field_notes(section_class("renderer"))  # a comment on the field's line
    assert renderer["preset"].startswith("auto (seed on CUDA, preview on CPU)")
    audio_features = field_notes(type(section_class("audio")().features))  # comment lines above the field
    assert audio_features["window"].startswith("Mel frames per video frame, centred on the frame's timestamp")
