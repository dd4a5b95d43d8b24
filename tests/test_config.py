"""Configuration: schema validation with clear errors, per-video overrides, typed configs in sync with the schema."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import shutil

import pytest
import yaml

from neural_renderer.config import build_dataclass, load_config, stage_config, validate_config
from neural_renderer.errors import PipelineInputError
from neural_renderer.qc import QcConfig
from neural_renderer.stages.code_version import STAGE_CODE, code_hash


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


def test_code_hash_is_per_stage_and_follows_the_code(tmp_path):
    assert len({code_hash(stage) for stage in STAGE_CODE}) == len(STAGE_CODE)
    assert code_hash("crop") == code_hash("crop")
    package = tmp_path / "neural_renderer"
    shutil.copytree(code_hash.__globals__["PACKAGE_DIR"], package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {stage: code_hash(stage, package) for stage in STAGE_CODE}
    with open(package / "crop" / "boxes.py", "a") as f:
        f.write("\n# edited\n")
    after = {stage: code_hash(stage, package) for stage in STAGE_CODE}
    changed = {stage for stage in STAGE_CODE if before[stage] != after[stage]}
    assert changed == {"crop", "assemble"}


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
