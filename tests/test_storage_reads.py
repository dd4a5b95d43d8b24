"""The storage readers on small hand-made HDF5 files (each under a second): frame times and frames of a tracking file,
the motion reader's defaults, flags and refusals, the features <-> Motion conversion and the rendered-frames writer.
Written for the survivors of mutation testing (docs/TESTING.md): each assertion fails for a plausible slip."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neural_renderer.errors import PipelineInputError
from neural_renderer.storage import (
    Motion,
    frames_shape,
    iter_frames,
    motion_feature_arrays,
    motion_from_features,
    read_attrs,
    read_frames,
    read_motion,
    read_stage,
    read_timestamps,
    write_rendered,
)
from neural_renderer.storage.motion import unknown_times

N = 5


def _motion_file(path, *, fps=None, times=None, track_times=None, translation_dtype=np.float32, **extra):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        if fps is not None:
            f.attrs["fps"] = fps
        f["fit/expression"] = rng.uniform(0, 1, (N, 2)).astype(np.float64)
        f["fit/rotation"] = np.repeat(np.eye(3, dtype=np.float32)[None], N, 0)
        f["fit/translation"] = rng.normal(0, 1, (N, 3)).astype(translation_dtype)
        f["gaze/head_pitch_yaw_deg"] = rng.normal(0, 5, (N, 2)).astype(np.float32)
        if times is not None:
            f["timestamps_s"] = times
        if track_times is not None:
            f["track/timestamps_s"] = track_times
        for key, value in extra.items():
            f[key.replace("__", "/")] = value
    return path


def test_frame_times_come_from_the_file_else_from_the_rate(tmp_path):
    times = np.array([0.5, 0.54, 0.58, 0.62, 0.7], np.float32)
    m = read_motion(_motion_file(tmp_path / "a.h5", fps=25.0, track_times=times))
    assert m.timestamps_s.dtype == np.float64 and np.array_equal(m.timestamps_s, times.astype(np.float64))
    m = read_motion(_motion_file(tmp_path / "b.h5", fps=20.0))  # no stored times: frame / fps
    assert m.fps == 20.0 and m.timestamps_s.dtype == np.float64 and np.allclose(m.timestamps_s, np.arange(N) / 20)
    m = read_motion(_motion_file(tmp_path / "c.h5"))  # no rate either: 25 fps
    assert m.fps == 25.0 and np.allclose(m.timestamps_s, np.arange(N) / 25)
    # read_timestamps: the stored times, else n_frames / the frames' / the valid flags' count over the rate
    assert np.array_equal(read_timestamps(tmp_path / "a.h5"), times.astype(np.float64))
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.attrs["fps"], f.attrs["n_frames"] = 10.0, 3
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f.attrs["fps"] = 10.0
        f["frames"] = np.zeros((4, 2, 2, 3), np.uint8)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.attrs["fps"] = 10.0
        f["valid"] = np.ones(2, bool)
    for name, n in (("d", 3), ("e", 4), ("f", 2)):
        got = read_timestamps(tmp_path / f"{name}.h5")
        assert got.dtype == np.float64 and np.array_equal(got, np.arange(n) / 10.0), name
    np.testing.assert_array_equal(unknown_times(3, 4.0), [0.0, 0.25, 0.5])
    np.testing.assert_array_equal(unknown_times(3, 0.5), [0.0, 2.0, 4.0])
    with h5py.File(tmp_path / "g.h5", "w") as f:  # stored times need no rate
        f["timestamps_s"] = times
    assert np.array_equal(read_timestamps(tmp_path / "g.h5"), times.astype(np.float64))
    assert np.isnan(unknown_times(3, 0.0)).all() and len(unknown_times(3, 0.0)) == 3


def test_read_motion_types_and_which_flags_invalidate_a_frame(tmp_path):
    fit_valid = np.array([True, False, True, True, True])
    gaze_valid = np.array([True, True, False, False, True])
    closed = np.array([False, True, True, False, False])  # a blink: the gaze is interpolated, the frame counts
    path = _motion_file(
        tmp_path / "t.h5",
        fps=30.0,
        translation_dtype=np.float32,
        fit__valid=fit_valid,
        gaze__valid=gaze_valid,
        gaze__eyes_closed=closed,
        track__valid=np.array([1, 1, 1, 1, 0], np.uint8),
    )
    m = read_motion(path)
    assert m.expression.dtype == np.float32 and m.translation.dtype == np.float64 and m.valid.dtype == bool
    # frame 1: fit invalid (a blink does not rescue it); 3: gaze invalid, eyes open; 4: track invalid
    assert m.valid.tolist() == [True, False, True, False, False]


def test_read_motion_refusals_name_the_file_and_the_reason(tmp_path):
    def refused(path, reason):
        with pytest.raises(PipelineInputError) as info:
            read_motion(path)
        assert info.value.path == str(path) and info.value.reason == reason, info.value.reason

    refused(tmp_path / "none.h5", "tracking file not found")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(PipelineInputError, match=r"^.*text\.h5: cannot read tracking file \(") as info:
        read_motion(tmp_path / "text.h5")
    assert info.value.path == str(tmp_path / "text.h5")
    for key, name in (
        ("fit/rotation", "rotation"),
        ("fit/translation", "translation"),
        ("gaze/head_pitch_yaw_deg", "gaze"),
        ("timestamps_s", "timestamps_s"),
    ):
        path = _motion_file(tmp_path / f"{name}.h5", times=np.arange(N) / 25.0, fit__valid=np.ones(N, bool))
        with h5py.File(path, "r+") as f:
            data = f[key][()]
            del f[key]
            f[key] = data[:-1]
        refused(path, f"{name} has {N - 1} frames, expression has {N}")
    path = _motion_file(tmp_path / "names.h5", fit__expression_names=["a", "b", "c"])
    refused(path, "2 expression coefficients but 3 names")


def test_motion_checks_finite_frames_and_holds_the_nearest(tmp_path):
    m = read_motion(_motion_file(tmp_path / "m.h5"))
    for field, index in (
        ("expression", (1, 0)),
        ("rotation", (2, 1, 1)),
        ("translation", (3, 2)),
        ("gaze_deg", (4, 1)),
    ):
        bad = getattr(m, field).copy()
        bad[index] = np.nan
        broken = Motion(**{**m.__dict__, field: bad})
        frame = index[0]
        assert broken.finite().tolist() == [i != frame for i in range(N)], field
        held = broken.held_finite()
        for name in ("expression", "rotation", "translation", "gaze_deg"):
            want = getattr(broken, name).copy()
            want[frame] = want[frame - 1]  # the nearest finite frame; ties: the earlier
            np.testing.assert_array_equal(getattr(held, name), want, err_msg=f"{field} {name}")
    nowhere = Motion(**{**m.__dict__, "gaze_deg": np.full((N, 2), np.nan)})
    with pytest.raises(ValueError, match="^no frame with finite parameters$"):
        nowhere.held_finite()
    assert len(m.head(2)) == 2 and np.array_equal(m.head(2).expression, m.expression[:2])


def test_features_round_trip_through_motion():
    rng = np.random.default_rng(1)
    arrays = {
        "expression": rng.uniform(0, 1, (N, 3)).astype(np.float32),
        "rotation": np.repeat(np.eye(3, dtype=np.float32)[None], N, 0),
        "gaze_pitch_yaw_deg": rng.normal(0, 5, (N, 2)).astype(np.float32),
        "motion_valid": np.array([1, 0, 1, 1, 0], np.uint8),
    }
    m = motion_from_features(arrays, fps=10.0)
    assert m.expression_names == () and m.fps == 10.0 and np.isnan(m.translation).all()
    assert m.translation.shape == (N, 3) and m.translation.dtype == np.float32
    assert np.allclose(m.timestamps_s, np.arange(N) / 10)
    assert m.valid.dtype == bool and m.valid.tolist() == [True, False, True, True, False]
    assert np.isnan(motion_from_features(arrays).timestamps_s).all()  # no rate: unknown times
    back = motion_feature_arrays(m)
    assert set(back) == set(arrays)
    for key, value in arrays.items():
        want = value.astype(bool) if key == "motion_valid" else value
        assert back[key].dtype == want.dtype and np.array_equal(back[key], want), key
    m64 = Motion(
        **{**m.__dict__, **{k: getattr(m, k).astype(np.float64) for k in ("expression", "rotation", "gaze_deg")}}
    )
    assert all(v.dtype == np.float32 for k, v in motion_feature_arrays(m64).items() if k != "motion_valid")


def test_frames_of_a_tracking_file_whole_in_blocks_and_refused_when_absent(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (7, 4, 4, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["frames"] = frames
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f["valid"] = np.ones(7, bool)
    assert np.array_equal(read_frames(tmp_path / "t.h5"), frames)
    assert np.array_equal(read_frames(tmp_path / "t.h5", stop=3), frames[:3])
    assert frames_shape(tmp_path / "t.h5") == ((7, 4, 4, 3), np.dtype(np.uint8))
    blocks = list(iter_frames(tmp_path / "t.h5", chunk=3))
    assert [start for start, _ in blocks] == [0, 3, 6] and [len(b) for _, b in blocks] == [3, 3, 1]
    assert np.array_equal(np.concatenate([b for _, b in blocks]), frames)
    assert [s for s, _ in iter_frames(tmp_path / "t.h5")] == [0]  # 64 frames a block by default
    for reader in (read_frames, frames_shape, lambda p: list(iter_frames(p))):
        with pytest.raises(PipelineInputError) as info:
            reader(tmp_path / "none.h5")
        assert info.value.path == str(tmp_path / "none.h5")
        assert info.value.reason == "no /frames in the tracking file"


def test_write_rendered_stores_frames_indices_and_attributes(tmp_path):
    source = tmp_path / "driver.wav"
    source.write_bytes(b"RIFF....")
    frames = np.random.default_rng(3).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    out = tmp_path / "r.h5"
    write_rendered(
        out,
        frames,
        [4, 5, 6],
        kind="audio",
        video="a_to_b",
        source_path=source,
        stage_config={"k": 1},
        fps=30.0,
        driver="a",
        target="b",
        audio_model="m.pt",
    )
    arrays, attrs = read_stage(out, "rendered"), read_attrs(out)
    assert np.array_equal(arrays["frames"], frames)
    assert arrays["frame_index"].dtype == np.int64 and arrays["frame_index"].tolist() == [4, 5, 6]
    want = {"fps": 30.0, "resolution": 8, "kind": "audio", "driver": "a", "target": "b", "audio_model": "m.pt"}
    assert {k: attrs[k] for k in want} == want
    assert (attrs["stage"], attrs["video"], attrs["source_path"]) == ("rendered", "a_to_b", str(source))
    import hashlib

    assert attrs["source_sha256"] == hashlib.sha256(b"RIFF....").hexdigest()
    assert attrs["stage_config"] == '{"k": 1}'


def test_read_stage_keeps_optional_datasets_strings_and_names_what_is_missing(tmp_path):
    from neural_renderer.storage import schema_for

    spec = schema_for("fit").datasets
    rng = np.random.default_rng(4)
    arrays = {}
    for name, d in spec.items():
        shape = tuple({"T": N, "Ke": 2, "Ki": 3, "L": 6}.get(s, s) for s in d.shape)
        if d.dtype == "str":
            arrays[name] = np.array(["jawOpen", "augenbraue_hoch_ä"])  # UTF-8 beyond ASCII
        else:
            arrays[name] = rng.normal(size=shape).astype(d.dtype)
    path = tmp_path / "tracking.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("fit")
        for name, value in arrays.items():
            g.create_dataset(name, data=value.astype(object) if value.dtype.kind == "U" else value)
    out = read_stage(path, "fit", group="/fit/")
    assert set(out) == set(arrays)  # the optional landmarks_68 too, when present
    assert out["expression_names"].dtype.kind == "U" and out["expression_names"].tolist() == [
        "jawOpen",
        "augenbraue_hoch_ä",
    ]
    for name, value in arrays.items():
        if value.dtype.kind != "U":
            assert np.array_equal(out[name], value), name
    with h5py.File(path, "r+") as f:
        del f["fit/landmarks_68"]
        del f["fit/rotation"]
    with pytest.raises(PipelineInputError) as info:
        read_stage(path, "fit", group="/fit/")
    assert info.value.path == str(path) and info.value.reason == "dataset /fit/rotation missing (schema 'fit')"
    with h5py.File(tmp_path / "crop.h5", "w") as f:
        f.attrs["stage"] = "crop"
    with pytest.raises(PipelineInputError) as info:
        read_stage(tmp_path / "crop.h5", "fit")
    assert info.value.path == str(tmp_path / "crop.h5") and info.value.reason == "is a 'crop' file, expected 'fit'"
    for bad, reason in ((tmp_path / "none.h5", "file not found"), (tmp_path / "text.h5", "not a readable HDF5 file")):
        if bad.name == "text.h5":
            bad.write_text("text")
        with pytest.raises(PipelineInputError) as info:
            read_attrs(bad)
        assert info.value.path == str(bad) and info.value.reason.startswith(reason)
    assert read_attrs(path) == {}  # opened read-only: nothing written


def test_motion_shape_refusals_and_driving_motion_refusals_name_what_is_wrong(tmp_path):
    from neural_renderer.storage import read_driving_motion

    m = read_motion(_motion_file(tmp_path / "m.h5"))
    for field, bad, expected in (
        ("expression", np.zeros(N, np.float32), f"({N}, -1)"),
        ("rotation", np.zeros((N, 3)), f"({N}, 3, 3)"),
        ("translation", np.zeros((N, 2)), f"({N}, 3)"),
        ("gaze_deg", np.zeros((N, 3)), f"({N}, 2)"),
        ("valid", np.zeros(N + 1, bool), f"({N},)"),
        ("timestamps_s", np.zeros(N - 1), f"({N},)"),
    ):
        with pytest.raises(ValueError) as info:
            Motion(**{**m.__dict__, field: bad})
        assert str(info.value) == f"Motion.{field} has shape {bad.shape}, expected {expected}"

    def refused(path, reason):
        with pytest.raises(PipelineInputError) as info:
            read_driving_motion(path)
        assert info.value.path == str(path) and info.value.reason == reason, info.value.reason

    names = {"fit__expression_names": ["a", "b"]}

    def with_frames(path, n):
        """A motion file whose motion datasets keep their first n frames."""
        _motion_file(path, **names)
        with h5py.File(path, "r+") as f:
            for key in ("fit/expression", "fit/rotation", "fit/translation", "gaze/head_pitch_yaw_deg"):
                data = f[key][()]
                del f[key]
                f[key] = data[:n]
        return path

    assert len(read_driving_motion(with_frames(tmp_path / "one.h5", 1))) == 1
    refused(with_frames(tmp_path / "empty.h5", 0), "tracking file has no frames")
    refused(_motion_file(tmp_path / "unnamed.h5"), "not a tracking file: missing ['fit/expression_names']")
    lost = _motion_file(tmp_path / "lost.h5", **names)
    with h5py.File(lost, "r+") as f:
        f["gaze/head_pitch_yaw_deg"][...] = np.nan
    refused(lost, "no frame with finite parameters")
