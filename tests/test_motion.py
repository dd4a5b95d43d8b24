"""The one motion value (`storage.Motion`): its reader gives exactly the arrays stored in tracking.h5, its checks
refuse malformed values, and h5py is imported only inside `neural_renderer/storage/` (and the BFM loader)."""

from __future__ import annotations

import ast
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_storage import _write_all_stages

from neural_renderer.errors import PipelineInputError
from neural_renderer.storage import Motion, assemble_tracking, read_driving_motion, read_motion

PACKAGE = Path(__file__).resolve().parents[1] / "neural_renderer"
H5PY_ALLOWED = {"morphable/io.py"}  # the loader of users' BFM files (HDF5)


def h5py_importers(package: Path) -> set[str]:
    """Package files (relative paths) with an `import h5py` / `from h5py ...` anywhere in their AST."""
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "h5py" or n.startswith("h5py.") for n in names):
                found.add(path.relative_to(package).as_posix())
    return found


def test_h5py_is_imported_only_inside_storage():
    found = h5py_importers(PACKAGE)
    outside = sorted(p for p in found if not p.startswith("storage/") and p not in H5PY_ALLOWED)
    assert not outside, f"h5py imported outside neural_renderer/storage/: {outside}"
    assert "storage/h5io.py" in found  # the scan sees imports at all


def test_h5py_scan_finds_imports_in_any_form(tmp_path):
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "ok.py").write_text("import h5py\n")
    (tmp_path / "a.py").write_text("def f():\n    import h5py as h\n")
    (tmp_path / "b.py").write_text("from h5py import File\n")
    (tmp_path / "c.py").write_text("import numpy  # h5py in a comment is not an import\n")
    assert h5py_importers(tmp_path) == {"storage/ok.py", "a.py", "b.py"}


def _tracking(tmp_path: Path, t: int = 9) -> Path:
    """An assembled tracking.h5 with random motion, some frames invalid in each stage, a blink and a NaN frame."""
    files = _write_all_stages(tmp_path, t)
    out = tmp_path / "tracking.h5"
    assemble_tracking(out, files, iter([np.zeros((8, 8, 3), np.uint8)] * t), t, 8, {"fps": 30.0})
    rng = np.random.default_rng(7)
    with h5py.File(out, "r+") as f:
        f["fit/expression"][...] = rng.uniform(0, 1, (t, 4)).astype(np.float32)
        f["fit/rotation"][...] = Rotation.random(t, random_state=3).as_matrix().astype(np.float32)
        f["fit/translation"][...] = rng.normal(0, 5, (t, 3)).astype(np.float32)
        gaze = rng.uniform(-20, 20, (t, 2)).astype(np.float32)
        gaze[5] = np.nan
        f["gaze/head_pitch_yaw_deg"][...] = gaze
        f["fit/valid"][...] = np.arange(t) != 1
        f["gaze/valid"][...] = ~np.isin(np.arange(t), [3, 4])
        f["gaze/eyes_closed"][...] = np.arange(t) == 4  # a blink: gaze interpolated, the frame still counts
        f["timestamps_s"][...] = np.arange(t) / 30.0 + 0.125
    return out


def test_read_motion_gives_the_stored_arrays_exactly(tmp_path):
    path = _tracking(tmp_path)
    m = read_motion(path)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(m.expression, f["fit/expression"][()])
        np.testing.assert_array_equal(m.rotation, f["fit/rotation"][()])
        np.testing.assert_array_equal(m.translation, f["fit/translation"][()])
        np.testing.assert_array_equal(m.gaze_deg, f["gaze/head_pitch_yaw_deg"][()])
        np.testing.assert_array_equal(m.timestamps_s, f["timestamps_s"][()])
        assert m.expression_names == tuple(f["fit/expression_names"].asstr()[()]) == ("a", "b", "c", "d")
        assert m.fps == f.attrs["fps"] == 30.0
        track_valid = f["track/valid"][()]
    assert m.expression.dtype == np.float32 and m.rotation.dtype == m.gaze_deg.dtype == np.float64
    expected = track_valid & (np.arange(9) != 1) & ~np.isin(np.arange(9), [3, 5])  # 4: blink; 5: NaN gaze
    np.testing.assert_array_equal(m.valid, expected)
    assert len(m) == 9 and len(m.frames(2, 5)) == 3 and m.frames(2, 5).timestamps_s[0] == m.timestamps_s[2]


def test_driving_motion_holds_the_nearest_finite_frame_and_needs_names(tmp_path):
    path = _tracking(tmp_path)
    m, raw = read_driving_motion(path), read_motion(path)
    np.testing.assert_array_equal(m.gaze_deg[5], raw.gaze_deg[4])  # 4 and 6 equally near: the earlier
    np.testing.assert_array_equal(np.delete(m.gaze_deg, 5, 0), np.delete(raw.gaze_deg, 5, 0))
    np.testing.assert_array_equal(m.valid, raw.valid)
    with h5py.File(path, "r+") as f:
        del f["fit/expression_names"]
    assert read_motion(path).expression_names == ()
    with pytest.raises(PipelineInputError, match=r"missing \['fit/expression_names'\]"):
        read_driving_motion(path)
    with h5py.File(path, "r+") as f:
        del f["gaze/head_pitch_yaw_deg"]
    with pytest.raises(PipelineInputError, match="tracking.h5: not a tracking file: missing"):
        read_motion(path)


def test_motion_refuses_inconsistent_shapes():
    n = 4
    ok = dict(
        expression=np.zeros((n, 2), np.float32),
        expression_names=("a", "b"),
        rotation=np.repeat(np.eye(3)[None], n, 0),
        translation=np.zeros((n, 3)),
        gaze_deg=np.zeros((n, 2)),
        valid=np.ones(n, bool),
        timestamps_s=np.arange(n) / 25.0,
        fps=25.0,
    )
    assert len(Motion(**ok)) == n
    for key, bad in (("rotation", np.zeros((n, 3))), ("timestamps_s", np.zeros(n + 1)), ("expression_names", ("a",))):
        with pytest.raises(ValueError, match="Motion"):
            Motion(**{**ok, key: bad})
