"""The description of each kind of rendered output (neural_renderer/outputs.py): paths and wildcards agree, the
metrics code fills exactly the metrics each kind declares, and the test split is read from model.pt."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from neural_renderer.errors import PipelineInputError
from neural_renderer.metrics.config import MetricsConfig
from neural_renderer.metrics.evaluate import LOWER_IS_BETTER, evaluate
from neural_renderer.metrics.features import read_test_split
from neural_renderer.outputs import (
    ALL_METRICS,
    AUDIO,
    BY_STEM,
    CROSS,
    KINDS,
    SELF,
    OutputKind,
    output_kind,
    wildcard_constraints,
)
from neural_renderer.video import VIDEO_NAME_PATTERN


def test_paths_wildcards_and_drivers_agree():
    constraints = wildcard_constraints(VIDEO_NAME_PATTERN)
    for kind, driver in ((SELF, None), (CROSS, "d0"), (AUDIO, "speech-1")):
        path = kind.path("results", "d6", driver, ".h5")
        # the rule's own pattern with its wildcards filled in gives the same file
        assert (
            kind.pattern("results", ".h5").format(video="d6", **({kind.driver: driver} if kind.driver else {})) == path
        )
        folder, stem = re.fullmatch(r"results/d6/(.+)/([^/]+)\.h5", path).groups()
        assert re.fullmatch(constraints["folder"], folder) and re.fullmatch(constraints["stem"], stem)
        assert BY_STEM[stem] is kind and kind.driver_of("d6", folder, VIDEO_NAME_PATTERN) == (driver or "d6")
    for folder in ("reenact", "metrics", "reenact/d0/x", "audio_render/bad name"):
        assert not re.fullmatch(constraints["folder"], folder), folder
    assert CROSS.reference_features("results", "d6", "d0") == "results/d6/reenact/d0/driving.features.h5"
    assert AUDIO.reference_features("results", "d6", "x") is None
    with pytest.raises(ValueError, match="unknown kind"):
        output_kind("mirror")


def test_each_metric_is_measured_or_absent_with_a_reason():
    assert set(ALL_METRICS) == set(LOWER_IS_BETTER)
    with pytest.raises(ValueError, match="measured or absent"):
        OutputKind("x", "X", "render", "x", "x", None, SELF.reference, metrics=("fid",))
    assert list(KINDS) == ["self", "cross", "audio"] and SELF.paired and not CROSS.paired


def _features(rng, n, clips):
    rot = np.repeat(np.eye(3, dtype=np.float32)[None], n, 0)
    return {
        "inception": rng.normal(size=(n, 16)).astype(np.float32),
        "i3d": rng.normal(size=(clips, 8)).astype(np.float32),
        "identity": rng.normal(size=(n, 8)).astype(np.float32),
        "identity_valid": np.ones(n, bool),
        "expression": rng.normal(size=(n, 5)).astype(np.float32),
        "rotation": rot,
        "gaze_pitch_yaw_deg": rng.normal(size=(n, 2)).astype(np.float32),
        "motion_valid": np.ones(n, bool),
    }


@pytest.mark.parametrize("kind", [CROSS, AUDIO], ids=lambda k: k.name)
def test_evaluate_fills_what_the_kind_declares(kind):
    rng = np.random.default_rng(0)
    generated, real, driving = _features(rng, 20, 3), _features(rng, 30, 3), _features(rng, 20, 3)
    values, notes = evaluate(kind, np.zeros((20, 8, 8, 3), np.uint8), generated, real, MetricsConfig(), driving=driving)
    assert {m for m, v in values.items() if v is not None} == set(kind.metrics)
    assert {m: notes[m] for m in kind.absent} == kind.absent


def test_test_split_comes_from_the_model_file(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"format": "x", "test_idx": torch.arange(90, 100), "train_idx": torch.arange(90)}, path)
    assert read_test_split(path).tolist() == list(range(90, 100))
    torch.save({"format": "x"}, path)
    with pytest.raises(PipelineInputError, match="no test_idx"):
        read_test_split(path)
    path.write_bytes(b"not a model")
    with pytest.raises(PipelineInputError, match="cannot load"):
        read_test_split(path)
