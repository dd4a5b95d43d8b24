"""The `portrait` command (neural_renderer/cli.py) on real files: a tracking.h5 built from the d0 clip with the
project's stages and a tiny renderer trained on it (shared with tests/test_reenact.py, built once per session).

Subcommands run in-process through `cli.main` (exit code, stdout and stderr as a user sees them); the entry points
themselves (`python -m neural_renderer`, the `portrait` script) are checked once in a subprocess.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from test_reenact import build_tracking, train_tiny_renderer

from neural_renderer.assets import sha256_file
from neural_renderer.cli import main
from neural_renderer.renderer.data import pose_features
from neural_renderer.renderer.render import PortraitRenderer
from neural_renderer.storage import read_attrs, read_stage
from neural_renderer.video import probe_video, resolve_ffmpeg

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("render", "inspect", "track", "config", "demo")


def portrait(capfd, *args: str) -> tuple[int, str, str]:
    """Run `portrait ARGS` in-process: exit code (argparse's SystemExit included), stdout, stderr."""
    capfd.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:
        rc = exc.code
    out, err = capfd.readouterr()
    return rc, out, err


def error_line(err: str) -> str:
    """The one error line (progress bars and log lines aside)."""
    lines = [line for line in err.splitlines() if ": error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def d0(tmp_path_factory, shared_dir, videos_dir):
    paths = build_tracking(videos_dir / "d0.mp4", tmp_path_factory.mktemp("identities"), 78, shared_dir)
    paths["model"] = train_tiny_renderer(paths)  # results/{video}/renderer/model.pt beside tracking.h5
    with h5py.File(paths["tracking"], "r") as f:
        paths["params"] = {
            k: f[k][()]
            for k in ("fit/expression", "fit/axis_angle", "fit/rotation", "fit/translation", "gaze/head_pitch_yaw_deg")
        }
        paths["names"] = [str(n) for n in f["fit/expression_names"].asstr()[()]]
        paths["fps"] = float(f.attrs["fps"])
    return paths


def test_render_side_by_side_reads_the_driver_frames_of_the_rendered_range(d0, tmp_path, capfd):
    """--side-by-side: driver crop | render, the driver frames read one at a time from tracking.h5 (frames 10..29
    here, not 0..19: the range's own frames)."""
    from neural_renderer.video import iter_frames

    out = tmp_path / "sbs.mp4"
    args = ("render", d0["model"], "--motion", d0["tracking"], "--out", out, "--frames", "10:30")
    rc, _, err = portrait(capfd, *args, "--transfer", "absolute", "--side-by-side", "--device", "cpu")
    assert rc == 0, err
    info = probe_video(out)
    assert (info.n_frames, info.width, info.height) == (20, 512, 256)
    left = np.stack(list(iter_frames(out, info)))[:, :, :256].astype(float)
    with h5py.File(d0["tracking"], "r") as f:
        crops = f["frames"][()].astype(float)
    assert crops.shape[1] == 256
    assert np.abs(left - crops[10:30]).mean() < 4  # H.264 of the driver's own crops
    assert np.abs(left - crops[0:20]).mean() > 2 * np.abs(left - crops[10:30]).mean()  # not the first 20 frames


def write_csv(path, d0, rows: slice, rename: dict[str, str] | None = None) -> None:
    """The tracked parameters in the documented CSV layout, written here independently of the package's reader."""
    p, names = d0["params"], [(rename or {}).get(n, n) for n in d0["names"]]
    header = ["frame", *names, "rx", "ry", "rz", "tx", "ty", "tz", "gaze_pitch_deg", "gaze_yaw_deg"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for t in range(78)[rows]:
            keys = ("fit/expression", "fit/axis_angle", "fit/translation", "gaze/head_pitch_yaw_deg")
            w.writerow([t, *(repr(float(v)) for k in keys for v in p[k][t])])


def test_entry_points_help_and_usage_errors():
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"portrait": "neural_renderer.cli:main"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "neural_renderer", *args], capture_output=True, text=True)

    top = run("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in SUBCOMMANDS), top.stderr
    for command in SUBCOMMANDS:
        proc = run(command, "--help")
        assert proc.returncode == 0 and "example:" in proc.stdout and f"portrait {command}" in proc.stdout, proc.stderr
    usage = run("render", "model.pt")  # --motion and --out missing
    assert usage.returncode == 2 and "required" in usage.stderr
    bad_range = run("render", "m.pt", "--motion", "x.csv", "--out", "o.mp4", "--frames", "a:b")
    assert bad_range.returncode == 2 and "frame range" in bad_range.stderr
    missing = run("inspect", "no_such_file.h5")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "portrait inspect: error: no_such_file.h5: file not found"


def test_render_drives_the_model_with_the_tracked_motion_csv_and_npz(d0, tmp_path, capfd):
    model, tracking = d0["model"], d0["tracking"]
    rc, out, err = portrait(
        capfd,
        "render",
        model,
        "--motion",
        tracking,
        "--out",
        tmp_path / "abs.mp4",
        "--frames",
        "10:30",
        "--transfer",
        "absolute",
        "--h5",
        tmp_path / "abs.h5",
        "--device",
        "cpu",
    )
    assert rc == 0, err
    assert "render" in err  # the tqdm progress bar
    frames = read_stage(tmp_path / "abs.h5", "rendered")
    assert np.array_equal(frames["frame_index"], np.arange(10, 30))
    # exactly what the renderer's own API makes of tracked frames 10..29
    p = d0["params"]
    renderer = PortraitRenderer(model, "cpu")
    sl = slice(10, 30)
    pose = pose_features(p["fit/rotation"][sl].astype(np.float64), p["fit/translation"][sl])
    gaze = np.deg2rad(p["gaze/head_pitch_yaw_deg"][sl]).astype(np.float32)
    expected = renderer.render_sequence(pose, gaze, p["fit/expression"][sl])
    diff = np.abs(frames["frames"].astype(int) - expected)
    assert diff.max() <= 1 and diff.mean() < 0.01  # float32/float64 rounding of the gaze only
    info = probe_video(tmp_path / "abs.mp4")
    assert (info.n_frames, info.width, info.height) == (20, 256, 256) and abs(info.fps - d0["fps"]) < 0.01

    # relative transfer of a video onto its own renderer (target tracking.h5 found beside the model) gives it back
    rc, _, err = portrait(
        capfd,
        "render",
        model,
        "--motion",
        tracking,
        "--out",
        tmp_path / "rel.mp4",
        "--frames",
        "10:30",
        "--h5",
        tmp_path / "rel.h5",
        "--device",
        "cpu",
    )
    assert rc == 0, err
    rel = read_stage(tmp_path / "rel.h5", "rendered")["frames"].astype(int)
    assert np.abs(rel - expected).max() <= 1
    assert read_attrs(tmp_path / "rel.h5")["kind"] == "self"
    rc, out, _ = portrait(capfd, "inspect", tmp_path / "rel.h5", "--json")
    summary = json.loads(out)
    assert rc == 0 and summary["stage"] == "rendered" and summary["qc"]["n_frames"] == 20
    assert summary["provenance"]["source_sha256"] == sha256_file(tracking)

    # the same motion as a CSV (documented units; own fps given) with an audio track muxed in
    write_csv(tmp_path / "motion.csv", d0, slice(10, 30))
    tone = tmp_path / "tone.wav"
    sine = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
    subprocess.run([resolve_ffmpeg(), "-v", "error", *sine, str(tone)], check=True)
    rc, out, err = portrait(
        capfd,
        "-q",
        "render",
        model,
        "--motion",
        tmp_path / "motion.csv",
        "--out",
        tmp_path / "csv.mp4",
        "--transfer",
        "absolute",
        "--fps",
        "12.5",
        "--audio",
        tone,
        "--h5",
        tmp_path / "csv.h5",
    )
    assert rc == 0, err
    from_csv = read_stage(tmp_path / "csv.h5", "rendered")["frames"].astype(int)
    assert np.abs(from_csv - expected).max() <= 1  # axis-angle in the CSV vs. the stored matrices: rounding only
    info = probe_video(tmp_path / "csv.mp4")
    assert info.has_audio and info.n_frames == 20 and abs(info.fps - 12.5) < 0.01

    # and as an NPZ with the coefficients in another order (matched to the model's basis by name)
    order = np.random.default_rng(0).permutation(len(d0["names"]))
    np.savez(
        tmp_path / "motion.npz",
        expression=p["fit/expression"][sl][:, order],
        expression_names=np.array(d0["names"])[order],
        rotation=p["fit/rotation"][sl],
        translation=p["fit/translation"][sl],
        gaze_pitch_yaw_deg=p["gaze/head_pitch_yaw_deg"][sl],
    )
    rc, out, err = portrait(
        capfd,
        "-q",
        "render",
        model,
        "--motion",
        tmp_path / "motion.npz",
        "--out",
        tmp_path / "npz.mp4",
        "--transfer",
        "absolute",
        "--h5",
        tmp_path / "npz.h5",
    )
    assert rc == 0, err
    assert np.abs(read_stage(tmp_path / "npz.h5", "rendered")["frames"].astype(int) - expected).max() <= 1
    assert "20 frames" in out


def test_render_refuses_bad_input_with_one_line_and_no_output(d0, tmp_path, capfd):
    model = d0["model"]
    write_csv(tmp_path / "other_basis.csv", d0, slice(0, 5), rename={d0["names"][3]: "mouthWide"})
    np.savez(
        tmp_path / "few.npz",
        expression=np.zeros((5, 10), np.float32),
        expression_names=np.array([f"e{i}" for i in range(10)]),
        rotation=np.repeat(np.eye(3)[None], 5, 0),
        translation=np.zeros((5, 3)),
        gaze_pitch_yaw_deg=np.zeros((5, 2)),
    )
    (tmp_path / "notes.txt").write_text("hello")
    alone = tmp_path / "alone"  # a model without its tracking.h5 beside it
    alone.mkdir()
    (alone / "model.pt").write_bytes(model.read_bytes())
    write_csv(tmp_path / "ok.csv", d0, slice(0, 5))
    cases = [
        ((model, "--motion", tmp_path / "other_basis.csv", "--transfer", "absolute"), "wrong expression basis"),
        ((model, "--motion", tmp_path / "few.npz", "--transfer", "absolute"), "wrong expression basis"),
        ((model, "--motion", tmp_path / "notes.txt"), "not a motion file"),
        ((model, "--motion", tmp_path / "missing.csv"), "motion file not found"),
        ((d0["tracking"], "--motion", tmp_path / "ok.csv"), "cannot load renderer model"),
        ((alone / "model.pt", "--motion", tmp_path / "ok.csv"), "--target-tracking"),
        ((model, "--motion", tmp_path / "ok.csv", "--transfer", "absolute", "--frames", "50:60"), "selects no frame"),
    ]
    for args, reason in cases:
        out = tmp_path / "out.mp4"
        rc, _, err = portrait(capfd, "render", *args, "--out", out, "--h5", tmp_path / "out.h5")
        assert rc == 1 and reason in error_line(err), (args, err)
        assert not out.exists() and not (tmp_path / "out.h5").exists()
        assert not list(tmp_path.glob(".out*"))  # no temporary file left behind


def test_inspect_summarises_tracking_stage_and_model_files(d0, tmp_path, capfd):
    tracking = d0["tracking"]
    rc, out, err = portrait(capfd, "inspect", tracking, "--json")
    assert rc == 0, err
    s = json.loads(out)
    assert s["stage"] == "tracking" and s["provenance"]["source_sha256"] == sha256_file(d0["video"])
    assert s["provenance"]["software_version"] and isinstance(s["provenance"]["config"], dict)
    ds = {d["name"]: d for d in s["datasets"]}
    assert not [d for d in s["datasets"] if "schema_error" in d]
    assert ds["fit/expression"]["shape"] == [78, len(d0["names"])] and ds["fit/translation"]["unit"] == "model units"
    assert ds["gaze/head_pitch_yaw_deg"]["unit"] == "deg" and ds["frames"]["shape"] == [78, 256, 256, 3]
    assert ds["fit/landmarks_68"]["shape"] == [78, 68, 2] and ds["fit/landmarks_68"]["unit"] == "px"
    with h5py.File(tracking, "r") as f:
        assert ds["track/valid"]["valid"] == {"true": int(f["track/valid"][()].sum()), "of": 78}
        lm = f["crop/landmarks"][()]
        assert ds["crop/landmarks"]["valid"]["finite_frames"] == int(np.isfinite(lm).all((1, 2)).sum())
        err_px = f["fit/reprojection_error_px"][()]
    assert s["qc"]["n_frames"] == 78 and np.isclose(s["qc"]["reprojection_error_px"]["median"], np.nanmedian(err_px))
    rc, text, _ = portrait(capfd, "inspect", tracking)
    assert rc == 0 and "stage 'tracking'" in text and "fit/expression: float32 (78," in text and "source_sha256" in text
    assert "fit/landmarks_68: float32 (78, 68, 2) [px]" in text and "Multi-PIE" in text

    # a damaged file: a dataset of the wrong shape is reported against the schema
    broken = tmp_path / "broken_fit.h5"
    with h5py.File(tracking, "r") as src, h5py.File(broken, "w") as dst:
        src.copy(src["fit"], dst, name="fit_group")
        for k, v in src["fit"].attrs.items():
            dst.attrs[k] = v
        for name in src["fit"]:
            if name != "axis_angle":
                src.copy(src[f"fit/{name}"], dst, name=name)
        dst["axis_angle"] = np.zeros((78, 4), np.float32)
    rc, out, _ = portrait(capfd, "inspect", broken, "--json")
    errors = {d["name"]: d.get("schema_error") for d in json.loads(out)["datasets"]}
    assert rc == 0 and "axis 1 must be 3" in errors["axis_angle"] and errors["expression"] is None

    rc, out, err = portrait(capfd, "inspect", d0["model"], "--json")
    assert rc == 0, err
    m = json.loads(out)
    blob = torch.load(d0["model"], weights_only=True)
    assert m["kind"] == "renderer" and m["preset"]["name"] == "seed" and m["iteration"] == 4 and m["resolution"] == 256
    assert m["split"]["train"]["count"] == len(blob["train_idx"]) and m["split"]["test"]["last"] == 77
    assert m["expression_names"] == d0["names"]
    rc, text, _ = portrait(capfd, "inspect", d0["model"])
    assert rc == 0 and "preset: seed" in text and "iterations: 4 of 4" in text and "jawOpen" in text

    (tmp_path / "foreign.h5").write_bytes(b"")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.zeros(3)
    (tmp_path / "notes.txt").write_text("hello")
    for path in (tmp_path / "foreign.h5", tmp_path / "notes.txt", d0["probe"]):
        rc, _, err = portrait(capfd, "inspect", path)
        assert rc == 1 and "not a file the pipeline writes" in error_line(err), err


def test_track_gives_the_stage_runners_outputs(d0, tmp_path, capfd, shared_dir):
    out = tmp_path / "d0"
    models = (
        "--landmarker",
        shared_dir / "models" / "face_landmarker.task",
        "--morphable",
        shared_dir / "models" / "ict_face_light_face.npz",
        "--correspondence",
        d0["dir"] / "correspondence.npz",
    )
    rc, stdout, err = portrait(
        capfd, "-q", "track", d0["video"], "--out", out, "--resolution", "256", "--device", "cpu", *models
    )
    assert rc == 0, err
    assert (out / "qc" / "contact_sheet.png").is_file() and (out / "ingest" / "probe.json").is_file()
    stats = json.loads((out / "qc" / "stats.json").read_text())
    assert f"{stats['n_valid']}/78 frames with a face" in stdout
    with h5py.File(out / "tracking.h5", "r") as mine, h5py.File(d0["tracking"], "r") as ref:
        assert mine["frames"].shape == ref["frames"].shape == (78, 256, 256, 3)
        for key in ("track/landmarks", "crop/boxes", "fit/expression", "fit/rotation", "gaze/head_pitch_yaw_deg"):
            assert np.allclose(mine[key][()], ref[key][()], atol=1e-4, equal_nan=True), key
    rc, _, err = portrait(capfd, "track", tmp_path / "none.mp4", "--out", tmp_path / "x", *models)
    assert rc == 1 and "none.mp4" in error_line(err)
    rc, _, err = portrait(capfd, "track", d0["video"], "--out", tmp_path / "y", "--landmarker", tmp_path / "no.task")
    assert rc == 1 and "model file not found" in error_line(err)


def test_config_prints_each_keys_value_and_source(tmp_path, capfd):
    config = tmp_path / "config.yaml"
    config.write_text("crop: {resolution: 256}\nfit: {w_landmark: 2.0}\noverrides: {clip: {crop: {margin: 0.9}}}\n")
    rc, out, _ = portrait(capfd, "config", "--config", config, "--video", "clip", "--json")
    rows = {r["key"]: (r["value"], r["source"]) for r in json.loads(out)}
    assert rc == 0 and rows["crop.resolution"] == (256, "config") and rows["crop.margin"] == (0.9, "override")
    assert rows["fit.w_landmark"] == (2.0, "config") and rows["fit.tolerance"][1] == "default"
    assert rows["renderer.train.iterations"] == (9000, "preset preview")  # no GPU here: auto -> preview
    rc, out, _ = portrait(capfd, "config", "--config", config, "--changed")
    keys = [line.split()[0] for line in out.splitlines() if not line.startswith("#")]
    assert rc == 0 and keys == ["crop.resolution", "fit.w_landmark"]  # the other video's override is not shown
    config.write_text("crop: {resolution: 300}\n")
    rc, _, err = portrait(capfd, "config", "--config", config)
    assert rc == 1 and "resolution" in error_line(err) and str(config) in error_line(err)


def test_demo_plans_the_whole_workflow_on_the_sample(tmp_path, capfd):
    (tmp_path / "config.yaml").write_text((REPO_ROOT / "config.yaml").read_text())
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "sample.mp4").symlink_to(REPO_ROOT / "data" / "raw" / "sample.mp4")
    rc, out, err = portrait(capfd, "demo", "--dry-run", "--directory", tmp_path, "--cores", "1")
    assert rc == 0, err[-3000:]
    assert f"report: {tmp_path / 'report.html'}" in out
    assert "train_renderer" in out + err and "metrics_summary" in out + err
    assert not (tmp_path / "results").exists()  # a dry run
    rc, _, err = portrait(capfd, "demo", "--dry-run", "--directory", tmp_path / "data")
    assert rc == 1 and "no config.yaml" in error_line(err)
