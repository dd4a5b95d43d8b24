"""Configuration: schema validation with clear errors, per-video overrides, typed configs in sync with the schema."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
import shutil

import pytest
import yaml

from neural_renderer.config import build_dataclass, load_config, stage_config, validate_config
from neural_renderer.errors import PipelineInputError
from neural_renderer.qc import QcConfig
from neural_renderer.stages.code_version import code_hash, stage_files


@pytest.fixture()
def config(repo_dir):
    return load_config(repo_dir / "config.yaml")


def test_shipped_config_validates_and_defaults_are_filled(config):
    assert config["crop"]["resolution"] in (256, 512, 1024)
    assert config["results_dir"] == "results"  # top-level defaults come from the schema
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


def test_schema_track_section_matches_track_frames_options(repo_dir):
    from neural_renderer.tracking import track_frames

    kwonly = {n for n, p in inspect.signature(track_frames).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert _schema_props(repo_dir, "track") == kwonly | {"mirror_average"}  # the stage's own option (stages/track.py)


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
    assert {"neural_renderer/config.py", "workflow_scripts/crop.py", "neural_renderer/workflow.py"} <= crop
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


# Keys the workflow reads itself (which videos to pair or drive); not options of the stage's dataclass.
WORKFLOW_KEYS = {"reenact": {"pairs"}, "audio": {"targets"}}


def _compare_nested(schema_def, cls, where):
    props = schema_def["properties"]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(props) - WORKFLOW_KEYS.get(where, set()) == set(fields), where
    assert schema_def.get("additionalProperties") is False, f"{where}: typos must be rejected"
    for name, f in fields.items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            _compare_nested(props[name], type(default), f"{where}.{name}")


@pytest.mark.parametrize(
    "section, cls_path",
    [
        ("ingest", "neural_renderer.video.config.IngestConfig"),
        ("qc", "neural_renderer.qc.QcConfig"),
        ("crop", "neural_renderer.crop.CropConfig"),
        ("fit", "neural_renderer.fitting.FitConfig"),
        ("gaze", "neural_renderer.fitting.GazeConfig"),
        ("renderer", "neural_renderer.renderer.config.RendererConfig"),
        ("metrics", "neural_renderer.metrics.config.MetricsConfig"),
        ("reenact", "neural_renderer.reenact.config.ReenactConfig"),
        ("audio", "neural_renderer.audio.config.AudioConfig"),
    ],
)
def test_schema_sections_match_dataclasses(repo_dir, section, cls_path):
    """The dataclasses hold the defaults; the schema must know exactly their fields, nested sections included (no
    silent typos)."""
    module, name = cls_path.rsplit(".", 1)
    cls = getattr(__import__(module, fromlist=[name]), name)
    schema = yaml.safe_load((repo_dir / "config.schema.yaml").read_text())
    _compare_nested(schema["$defs"][section], cls, section)
