"""HDF5 schema and atomic writes: malformed arrays are rejected, killed writes leave nothing behind."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from file_limits import errors_under_file_size_limit

from neural_renderer.atomic import OTHER_HOST_STALE_S, sweep_stale_temporaries, temporary_path
from neural_renderer.errors import PipelineInputError
from neural_renderer.storage import (
    assemble_tracking,
    atomic_path,
    markdown,
    open_h5,
    provenance,
    read_attrs,
    read_stage,
    validate_arrays,
    write_stage,
)
from neural_renderer.storage.schema import STAGES

REPO = Path(__file__).resolve().parents[1]

PROV = dict(video="v", source_path="/data/v.mp4", source_sha256="ab" * 32, stage_config={"a": 1})


def _track_arrays(t: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    valid = np.ones(t, bool)
    valid[2] = False
    lm = rng.uniform(0, 100, (t, 478, 3)).astype(np.float32)
    lm[~valid] = np.nan
    return {
        "landmarks": lm,
        "blendshapes": rng.uniform(0, 1, (t, 52)).astype(np.float32),
        "blendshape_names": np.array([f"b{i}" for i in range(52)]),
        "transforms": np.tile(np.eye(4, dtype=np.float32), (t, 1, 1)),
        "valid": valid,
        "timestamps_s": np.arange(t) / 30.0,
    }


TRACK_ATTRS = {
    "fps": 30.0, "width": 100, "height": 100, "detection_rate": 0.8, "model_sha256": "00", "timeline": "source",
    "sar": "1:1", "damage": "", "n_faces_max": 1,
}  # fmt: skip


def _crop_arrays(t: int = 5) -> dict[str, np.ndarray]:
    return {"boxes": np.zeros((t, 3)), "landmarks": np.zeros((t, 478, 3), np.float32), "valid": np.ones(t, bool)}


def test_roundtrip_keeps_values_and_attrs(tmp_path):
    arrays = _track_arrays()
    path = tmp_path / "track.h5"
    write_stage(path, "track", arrays, **PROV, attrs=TRACK_ATTRS)
    back = read_stage(path, "track")
    np.testing.assert_array_equal(back["landmarks"], arrays["landmarks"])  # NaNs included
    assert list(back["blendshape_names"]) == list(arrays["blendshape_names"])
    attrs = read_attrs(path)
    assert attrs["stage"] == "track" and attrs["fps"] == 30.0 and attrs["schema_version"] == 1
    assert provenance(path) == {"video": "v", "source_path": "/data/v.mp4", "source_sha256": "ab" * 32}


def test_per_frame_arrays_are_chunked_along_time(tmp_path):
    path = tmp_path / "track.h5"
    write_stage(path, "track", _track_arrays(300), **PROV, attrs=TRACK_ATTRS)
    with h5py.File(path) as f:
        assert f["landmarks"].chunks == (256, 478, 3)
        assert f["landmarks"].compression == "gzip"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.update(landmarks=a["landmarks"].astype(np.float64)), "dtype"),
        (lambda a: a.update(landmarks=a["landmarks"][:, :468]), "axis 1 must be 478"),
        (lambda a: a.update(valid=a["valid"][:4]), "another dataset has T=5"),
        (lambda a: a.pop("transforms"), "missing datasets"),
        (lambda a: a.update(extra=np.zeros(3)), "unexpected"),
    ],
)
def test_schema_rejects_malformed_arrays(tmp_path, mutate, message):
    arrays = _track_arrays()
    mutate(arrays)
    with pytest.raises(ValueError, match=message):
        write_stage(tmp_path / "track.h5", "track", arrays, **PROV, attrs=TRACK_ATTRS)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temp file


def test_missing_stage_attribute_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="model_sha256"):
        write_stage(
            tmp_path / "t.h5",
            "track",
            _track_arrays(),
            **PROV,
            attrs={k: v for k, v in TRACK_ATTRS.items() if k != "model_sha256"},
        )


def test_killed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "crop.h5"
    write_stage(path, "crop", _crop_arrays(), **PROV, attrs={"resolution": 256})
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("boxes", data=np.ones((5, 3)))
            raise KeyboardInterrupt  # the job is killed half-way through writing
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["crop.h5"]


SIGKILLED_WRITER = """
import sys
import numpy as np
from neural_renderer.storage import write_stage
t = 6000  # about 34 MB of gzip-compressed landmarks (incompressible): killed after its first megabyte
rng = np.random.default_rng(1)
arrays = {"boxes": rng.random((t, 3)), "landmarks": rng.random((t, 478, 3), dtype=np.float32),
          "valid": np.ones(t, bool)}
prov = dict(video="v", source_path="/data/v.mp4", source_sha256="cd" * 32, stage_config={"a": 2})
write_stage(sys.argv[1], "crop", arrays, **prov, attrs={"resolution": 512})
"""


def test_sigkill_mid_write_keeps_the_previous_version_and_the_sweep_removes_the_leftover(tmp_path):
    """A stage writer (write_stage) in its own process, killed by SIGKILL from outside while its temporary file grows:
    the previous version stays whole and readable, nothing half-written takes the final name, and the workflow's
    start-up sweep (sweep_stale_temporaries, rules/common.smk) removes the dead writer's `.crop.h5.tmp-HOST-PID`."""
    path = tmp_path / "crop.h5"
    write_stage(path, "crop", _crop_arrays(), **PROV, attrs={"resolution": 256})
    before = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", SIGKILLED_WRITER, str(path)], env=env)
    tmp = temporary_path(path, pid=proc.pid)  # .crop.h5.tmp-HOST-PID
    try:
        deadline = time.monotonic() + 120
        while not (tmp.exists() and tmp.stat().st_size > 1_000_000):
            assert proc.poll() is None, f"the writer ended ({proc.returncode}) before it was killed"
            assert time.monotonic() < deadline, "the writer's temporary file did not grow within 120 s"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before  # the final name still holds the previous, complete version
    assert read_stage(path, "crop")["landmarks"].shape == (5, 478, 3) and read_attrs(path)["resolution"] == 256
    assert sorted(p.name for p in tmp_path.iterdir()) == [tmp.name, "crop.h5"]  # the killed writer's leftover
    with pytest.raises(PipelineInputError):  # and it is not a readable stage file
        read_stage(tmp, "crop")
    assert sweep_stale_temporaries(tmp_path) == [tmp]
    assert [p.name for p in tmp_path.iterdir()] == ["crop.h5"] and path.read_bytes() == before


def test_corrupt_or_missing_file_gives_clear_error(tmp_path):
    bad = tmp_path / "track.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(PipelineInputError, match="not a readable HDF5 file"):
        open_h5(bad)
    with pytest.raises(PipelineInputError, match="file not found"):
        read_stage(tmp_path / "nope.h5", "track")


def test_reading_the_wrong_stage_is_refused(tmp_path):
    path = tmp_path / "crop.h5"
    write_stage(path, "crop", _crop_arrays(), **PROV, attrs={"resolution": 256})
    with pytest.raises(PipelineInputError, match="expected 'track'"):
        read_stage(path, "track")


def _write_all_stages(tmp_path, t):
    rng = np.random.default_rng(1)
    files = {}
    write_stage(tmp_path / "track.h5", "track", _track_arrays(t), **PROV, attrs=TRACK_ATTRS)
    files["track"] = tmp_path / "track.h5"
    write_stage(tmp_path / "crop.h5", "crop", _crop_arrays(t), **PROV, attrs={"resolution": 8})
    files["crop"] = tmp_path / "crop.h5"
    fit = {
        "identity": rng.normal(size=10).astype(np.float32),
        "expression": rng.uniform(size=(t, 4)).astype(np.float32),
        "expression_names": np.array(["a", "b", "c", "d"]),
        "rotation": np.tile(np.eye(3, dtype=np.float32), (t, 1, 1)),
        "axis_angle": np.zeros((t, 3), np.float32),
        "translation": np.zeros((t, 3), np.float32),
        "intrinsics": np.array([16, 16, 4, 4], np.float32),
        "reprojection_error_px": np.ones(t, np.float32),
        "valid": np.ones(t, bool),
        "correspondence_mediapipe": np.arange(7, dtype=np.int32),
        "correspondence_vertex": np.arange(7, dtype=np.int32),
    }
    write_stage(
        tmp_path / "fit.h5", "fit", fit, **PROV, attrs={"model_name": "m", "model_sha256": "0", "resolution": 8}
    )
    files["fit"] = tmp_path / "fit.h5"
    gaze = {
        "eye_vectors": np.zeros((t, 2, 3), np.float32),
        "vector": np.zeros((t, 3), np.float32),
        "eye_pitch_yaw_deg": np.zeros((t, 2, 2), np.float32),
        "pitch_yaw_deg": np.zeros((t, 2), np.float32),
        "head_vector": np.zeros((t, 3), np.float32),
        "head_pitch_yaw_deg": np.zeros((t, 2), np.float32),
        "valid": np.ones(t, bool),
        "eyes_closed": np.zeros(t, bool),
        "blink_score": np.zeros(t, np.float32),
    }
    write_stage(tmp_path / "gaze.h5", "gaze", gaze, **PROV)
    files["gaze"] = tmp_path / "gaze.h5"
    return files


def test_assemble_merges_stage_groups_and_frames_one_chunk_each(tmp_path):
    t = 6
    files = _write_all_stages(tmp_path, t)
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(t)]
    out = tmp_path / "tracking.h5"
    assert assemble_tracking(out, files, iter(frames), t, 8, {"fps": 30.0}) == t
    with h5py.File(out) as f:
        assert f["frames"].chunks == (1, 8, 8, 3)
        assert int(f["frames"][4, 0, 0, 0]) == 4
        assert f["fit"].attrs["model_name"] == "m"
        assert f.attrs["stage"] == "tracking" and f.attrs["n_frames"] == t
        np.testing.assert_array_equal(f["timestamps_s"][()], np.arange(t) / 30.0)  # the track stage's, at the top
        assert f["timestamps_s"].dtype == np.float64
    back = read_stage(out, "fit", group="fit")
    np.testing.assert_array_equal(back["expression"], read_stage(files["fit"], "fit")["expression"])


def test_assemble_frame_count_mismatch_leaves_no_file(tmp_path):
    files = _write_all_stages(tmp_path, 4)
    out = tmp_path / "tracking.h5"
    with pytest.raises(PipelineInputError, match="decoded 3 frames but tracking has 4"):
        assemble_tracking(out, files, iter([np.zeros((8, 8, 3), np.uint8)] * 3), 4, 8, {})
    assert not out.exists() and not list(tmp_path.glob(".tracking.h5.tmp*"))


def test_assemble_logs_the_expected_size_before_writing_and_it_is_close(tmp_path, caplog):
    """The log names the size tracking.h5 will have before any frame is written; on noisy 64² frames (which compress
    alike, as a video's faces do) the estimate is within 10 % of the file written."""
    t = 30
    files = _write_all_stages(tmp_path, t)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    frames = [np.clip(base.astype(int) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8) for _ in range(t)]
    out = tmp_path / "tracking.h5"
    with caplog.at_level(logging.INFO, logger="neural_renderer.storage.h5io"):
        assemble_tracking(out, files, iter(frames), t, 64, {"fps": 30.0})
    lines = [r.getMessage() for r in caplog.records if "estimated from the first frame" in r.getMessage()]
    assert len(lines) == 1 and f"for {t} frames at 64 px" in lines[0], lines
    expected = float(lines[0].split("about ")[1].split(" kB")[0]) * 1000
    assert abs(expected / out.stat().st_size - 1) < 0.1, (expected, out.stat().st_size)


def test_assemble_that_runs_out_of_room_fails_in_one_line_and_leaves_no_file(tmp_path):
    """A file-size limit stands in for a full disk or quota (tests/file_limits.py)."""
    files = {k: str(v) for k, v in _write_all_stages(tmp_path, 40).items()}
    out = tmp_path / "out" / "tracking.h5"
    lines = errors_under_file_size_limit(  # 40 noise frames of 64² are ~490 kB
        "import numpy as np\n"
        "from neural_renderer.storage import assemble_tracking\n"
        "rng = np.random.default_rng(0)\n"
        "frames = (rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(40))\n"
        f"assemble_tracking({str(out)!r}, {files!r}, frames, 40, 64, {{}})",
        300_000,
    )
    assert len(lines) == 1 and "tracking.h5: no room to write it (about" in lines[0], lines
    assert list(out.parent.iterdir()) == []  # neither the file nor its temporary


def test_validate_arrays_binds_symbolic_dims():
    dims = validate_arrays("crop", _crop_arrays(7))
    assert dims == {"T": 7}


def test_schema_doc_matches_schema_module(repo_dir):
    doc = (repo_dir / "docs" / "SCHEMA.md").read_text()
    assert markdown() in doc, "docs/SCHEMA.md is stale: run `python docs/generate.py`"
    assert set(STAGES) == {"track", "crop", "fit", "gaze", "tracking", "rendered", "features"}


def test_sweep_removes_the_temporary_file_of_a_killed_job_only(tmp_path):
    """A job killed with SIGKILL leaves its temporary file; the sweep removes it and nothing that is alive or done."""
    out = tmp_path / "k1" / "tracking.h5"
    killed = (
        "import os, signal, sys\n"
        "from neural_renderer.atomic import atomic_path\n"
        "cm = atomic_path(sys.argv[1]); tmp = cm.__enter__(); tmp.write_bytes(b'x' * 4096)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", killed, str(out)], env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    (left,) = out.parent.glob(".tracking.h5.tmp-*")  # what the issue saw: the killed job's file stays
    assert left.stat().st_size == 4096 and not out.exists()
    done = tmp_path / "k1" / "crop.h5"
    done.write_bytes(b"finished output")
    legacy = tmp_path / "k1" / f".fit.h5.tmp-{_dead_pid()}"  # the former name: no host, a pid that is gone
    legacy.write_bytes(b"x")
    other_fresh = tmp_path / "k1" / ".gaze.h5.tmp-node17-4242"  # another node's job may still be running
    other_fresh.write_bytes(b"x")
    other_old = tmp_path / "k1" / ".qc.json.tmp-node17-4243"
    other_old.write_bytes(b"x")
    os.utime(other_old, (time.time() - 2 * 86400,) * 2)
    with atomic_path(tmp_path / "k1" / "live.h5") as live:  # this process is alive: its file must stay
        live.write_bytes(b"x")
        removed = sweep_stale_temporaries(tmp_path)
        assert live.exists()
    assert sorted(removed) == sorted([left, legacy, other_old])
    assert sorted(p.name for p in (tmp_path / "k1").iterdir()) == [".gaze.h5.tmp-node17-4242", "crop.h5", "live.h5"]
    assert done.read_bytes() == b"finished output"


def _dead_pid() -> int:
    code = "import os; print(os.getpid())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_temporary_names_carry_a_sanitised_host_and_pid(tmp_path, monkeypatch):
    """Any hostname becomes a name part the sweep's pattern reads back: characters outside [A-Za-z0-9.-] become _,
    an empty hostname 'host'."""
    for hostname, part in (("GPU-node7.cluster", "GPU-node7.cluster"), ("my host/1", "my_host_1"), ("", "host")):
        monkeypatch.setattr(socket, "gethostname", lambda h=hostname: h)
        assert temporary_path(tmp_path / "a.h5", pid=123).name == f".a.h5.tmp-{part}-123"


def test_sweep_waits_a_full_day_for_other_hosts_and_leaves_what_is_not_its_file(tmp_path):
    other = tmp_path / ".gaze.h5.tmp-node17-4242"
    other.write_bytes(b"x")
    os.utime(other, (1_000_000, 1_000_000))
    assert sweep_stale_temporaries(tmp_path, now=1_000_000 + OTHER_HOST_STALE_S) == [] and other.exists()
    assert sweep_stale_temporaries(tmp_path, now=1_000_000 + OTHER_HOST_STALE_S + 1) == [other]
    # a dead local job's files go, however the listing interleaves them with names that only look temporary and with a
    # directory of such a name (both left alone)
    dead = _dead_pid()
    folder = tmp_path / f".dir.tmp-{dead}"
    folder.mkdir()
    lookalikes = [tmp_path / f".n{i}.tmp-nopid" for i in range(20)]
    stale = [tmp_path / f".s{i}.h5.tmp-{dead}" for i in range(20)]
    for path in lookalikes + stale:
        path.write_bytes(b"x")
    assert sorted(sweep_stale_temporaries(tmp_path)) == sorted(stale)
    assert folder.is_dir() and all(p.exists() for p in lookalikes)
