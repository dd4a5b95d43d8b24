"""Metrics orchestration without the networks: reading frames by index, which reference each kind of output uses,
relative pose/gaze for cross-reenactment, n/a reasons, and the summary table (CSV + Markdown + plot)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from neural_renderer.errors import PipelineInputError
from neural_renderer.metrics.evaluate import METRICS, _centred, metrics_record, motion_distances
from neural_renderer.metrics.features import read_tracking_frames
from neural_renderer.metrics.summary import markdown, summary_table
from neural_renderer.stages.metrics import run_summary


def _feats(rot, gaze, expr, valid=None):
    n = len(rot)
    return {
        "rotation": np.asarray(rot, np.float32),
        "gaze_pitch_yaw_deg": np.asarray(gaze, np.float32),
        "expression": np.asarray(expr, np.float32),
        "motion_valid": np.ones(n, bool) if valid is None else np.asarray(valid),
    }


def test_read_tracking_frames_returns_frames_in_the_asked_order(tmp_path):
    frames = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    path = tmp_path / "tracking.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames, chunks=(1, 4, 4, 3))
        f.attrs["fps"] = 30.0
    got, fps = read_tracking_frames(path, np.array([4, 1, 4, 0]))
    assert fps == 30.0 and got[:, 0, 0, 0].tolist() == [4, 1, 4, 0]
    with pytest.raises(ValueError, match="outside the video's 6 frames"):
        read_tracking_frames(path, np.array([6]))


def test_relative_motion_ignores_each_sequences_mean_pose():
    """Cross-reenactment keeps the target's own mean pose: a constant rotation offset must not count as error."""
    rng = np.random.default_rng(0)
    deltas = Rotation.from_rotvec(rng.normal(scale=0.1, size=(20, 3)))
    offset = Rotation.from_euler("y", 25, degrees=True)
    driving = _feats(deltas.as_matrix(), rng.normal(size=(20, 2)), rng.random((20, 5)))
    generated = _feats(
        (deltas * offset).as_matrix(), driving["gaze_pitch_yaw_deg"] + [5.0, -3.0], driving["expression"]
    )
    absolute = motion_distances(generated, driving, relative=False)
    relative = motion_distances(generated, driving, relative=True)
    assert absolute["pose_distance_deg"] == pytest.approx(25.0, abs=1e-3)
    assert absolute["gaze_distance_deg"] > 3.0
    assert relative["pose_distance_deg"] < 0.5 and relative["gaze_distance_deg"] < 1e-3
    assert relative["expression_distance"] == pytest.approx(0.0)


def test_centring_leaves_invalid_frames_out_of_the_mean():
    rot = Rotation.from_euler("x", [[10], [10], [90]], degrees=True).as_matrix()
    feats = _feats(rot, [[1, 1], [1, 1], [50, 50]], np.zeros((3, 2)), valid=[True, True, False])
    out = _centred(feats)
    assert np.allclose(out["rotation"][:2], np.eye(3), atol=1e-6)
    assert np.allclose(out["gaze_pitch_yaw_deg"][:2], 0)


def _record(kind, target, driver, values, notes=None):
    vals = dict.fromkeys(METRICS)
    vals.update(values)
    return metrics_record(kind, target, driver, "renderer-full", 10, vals, notes or {}, {"csim": "dlib_resnet_v1"})


def test_summary_table_lists_every_output_with_reasons_for_missing_values(tmp_path):
    records = [
        _record(
            "cross",
            "d6",
            "d0",
            {"fid": 80.0, "csim": 0.9, "pose_distance_deg": 2.0},
            {"fvd": "needs >= 2 clips", "l1": "no ground truth"},
        ),
        _record("self", "d6", "d6", {"l1": 0.05, "psnr": 24.0, "fid": 30.0, "fvd": 200.0}),
        _record("audio", "d6", "example", {"fid": 120.0}),
    ]
    files = []
    for i, rec in enumerate(records):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(json.dumps(rec))
    csv, md, png = tmp_path / "s.csv", tmp_path / "s.md", tmp_path / "s.png"
    with pytest.raises(
        PipelineInputError, match=r"^no metrics to summarise \(enable renderer, reenact or audio targets\)$"
    ):
        run_summary([], csv, md, png)
    df = run_summary(files, csv, md, png)  # the stage's entry: write_summary over the records
    assert list(df["kind"]) == ["self", "cross", "audio"]  # paper order, not file order
    back = pd.read_csv(csv)
    assert back.loc[0, "psnr"] == 24.0 and np.isnan(back.loc[1, "l1"])
    assert "fvd: needs >= 2 clips" in back.loc[1, "notes"] and "l1: no ground truth" in back.loc[1, "notes"]
    text = md.read_text()
    assert "## Self-reenactment" in text and "## Cross-identity reenactment" in text and "## Audio-driven" in text
    assert "| d6 | d0 | renderer-full | 10 | 80.00 |" in text  # cross table: only metrics it has, n/a where missing
    assert "PSNR ↑" in text and "FID ↓" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_shows_na_not_zero():
    df = summary_table(
        [_record("self", "a", "a", {"l1": 0.1, "fid": None}), _record("self", "b", "b", {"l1": 0.2, "fid": 3.0})]
    )
    text = markdown(df)
    assert "| a | a | renderer-full | 10 | 0.1000 | n/a |" in text


def test_untracked_frames_are_left_out_of_relative_distances():
    """A frame where the tracker lost the generated face must not count as a pose error (regression: it was compared
    as the inverse of the mean, ~180 degrees)."""
    rng = np.random.default_rng(1)
    rot = (
        Rotation.from_euler("x", 180, degrees=True) * Rotation.from_rotvec(rng.normal(scale=0.05, size=(10, 3)))
    ).as_matrix()
    driving = _feats(rot, np.zeros((10, 2)), np.zeros((10, 3)))
    gen_rot = rot.copy()
    gen_rot[3:] = np.nan
    generated = _feats(gen_rot, np.zeros((10, 2)), np.zeros((10, 3)), valid=[True] * 3 + [False] * 7)
    assert motion_distances(generated, driving, relative=True)["pose_distance_deg"] < 10.0
