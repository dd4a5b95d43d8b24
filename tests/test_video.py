"""Video ingest on real files: probing, in-process decoding, pixel shape, frame times, rotation, damage, audio,
discovery and bad input. The odd inputs are built at test time with the shipped ffmpeg."""

from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from neural_renderer.errors import PipelineInputError
from neural_renderer.video import (
    VIDEO_EXTENSIONS,
    VIDEO_NAME_PATTERN,
    VideoInfo,
    decode_frames,
    discover_videos,
    extract_audio,
    iter_frames,
    probe_video,
    resolve_ffmpeg,
    scan_videos,
)

REPO = Path(__file__).resolve().parents[1]

# The README table of the shared test videos (audio: what the files actually contain; see test_probe_audio).
README = {
    "d0": (512, 512, 78, 25.0),
    "d6": (480, 480, 1008, 30.0),
    "d18": (480, 480, 216, 30.0),
    "d12": (512, 512, 183, 25.0),
}


@pytest.fixture(scope="module")
def ffmpeg_exe() -> str:
    return resolve_ffmpeg()


def _ffmpeg(exe: str, *args: str) -> None:
    subprocess.run([exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, ffmpeg_exe, videos_dir) -> dict[str, Path]:
    """Small generated videos: a marker (white square top-left, 64x48), its rotated copies, one with audio, and a
    truncated d0 whose index (moov) is at the front so that it still probes."""
    d = tmp_path_factory.mktemp("synthetic")
    marker = d / "marker.mp4"
    _ffmpeg(ffmpeg_exe, "-f", "lavfi", "-i", "color=c=black:s=64x48:r=10,drawbox=x=0:y=0:w=16:h=16:color=white:t=fill",
            "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(marker))  # fmt: skip
    paths = {"marker": marker}
    for deg in (90, -90, 180):
        out = d / f"rot{deg % 360}.mp4"
        # -display_rotation (ffmpeg >= 7) writes a display matrix: counter-clockwise degrees. Stream copy: same pixels.
        _ffmpeg(ffmpeg_exe, "-display_rotation", str(deg), "-i", str(marker), "-c", "copy", str(out))
        paths[f"rot{deg % 360}"] = out
    audio = d / "audio.mp4"
    tone = "sine=frequency=440:sample_rate=44100"
    _ffmpeg(ffmpeg_exe, "-f", "lavfi", "-i", "testsrc=s=64x48:r=10", "-f", "lavfi", "-i", tone, "-t", "2",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(audio))  # fmt: skip
    paths["audio"] = audio
    faststart = d / "d0_faststart.mp4"
    _ffmpeg(ffmpeg_exe, "-i", str(videos_dir / "d0.mp4"), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    truncated = d / "d0_truncated_front_index.mp4"
    truncated.write_bytes(data[: int(len(data) * 0.3)])
    paths["truncated_front_index"] = truncated
    return paths


# ---------------------------------------------------------------------------------------------------------------
# probing


@pytest.mark.parametrize("name", sorted(README))
def test_probe_matches_readme(videos_dir, name):
    info = probe_video(videos_dir / f"{name}.mp4")
    width, height, n_frames, fps = README[name]
    assert (info.width, info.height, info.n_frames, info.fps) == (width, height, n_frames, fps)
    assert info.duration_s == pytest.approx(n_frames / fps)
    assert info.rotation == 0
    assert info.codec == "h264"
    assert info.path == str(videos_dir / f"{name}.mp4")
    assert (info.stored_width, info.stored_height, info.sar) == (width, height, "1:1")
    assert not info.vfr and not info.resampled and info.damage == "" and info.start_s == 0.0


def test_probe_audio(videos_dir):
    # The README says "no audio tracks", but d6/d12/d18 do carry an AAC stream; d0 has none.
    assert not probe_video(videos_dir / "d0.mp4").has_audio
    assert probe_video(videos_dir / "d6.mp4").has_audio


def _bad_file(kind: str, d: Path, d0: Path) -> Path:
    path = d / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 50)
    elif kind == "truncated":  # d0's index (moov) is at the end: its first 30% cannot be opened
        path.write_bytes(d0.read_bytes()[: int(d0.stat().st_size * 0.3)])
    return path


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("missing", "does not exist"),
        ("empty", "empty"),
        ("text", "not a readable video"),
        ("truncated", "not a readable video"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, videos_dir, kind, needle):
    path = _bad_file(kind, tmp_path, videos_dir / "d0.mp4")
    with pytest.raises(PipelineInputError, match=needle) as exc:
        probe_video(path)
    assert str(exc.value).startswith(str(path))
    if kind in ("text", "truncated"):  # decoding with a made-up probe fails just as clearly, naming the reason
        fake = VideoInfo(str(path), 64, 64, 25.0, 10, 0.4, 0, False, "h264", source_frames=10)
        with pytest.raises(PipelineInputError, match="not a readable video .*Invalid data") as exc:
            list(iter_frames(path, fake))
        assert str(exc.value).startswith(str(path))


def test_directory_is_not_a_video(tmp_path):
    with pytest.raises(PipelineInputError, match="not a regular file"):
        probe_video(tmp_path)


def test_truncated_file_with_front_index_decodes_the_frames_that_exist(synthetic):
    """Probing succeeds (the index is intact) and counts the readable frames; decoding yields them, no error."""
    info = probe_video(synthetic["truncated_front_index"])
    assert 0 < info.n_frames < 78
    assert info.damage.startswith("truncated file: nothing decodes from")
    frames = list(iter_frames(synthetic["truncated_front_index"], info))
    assert len(frames) == info.n_frames
    assert all(f.shape == (512, 512, 3) for f in frames)


def test_resolve_ffmpeg(tmp_path):
    default = resolve_ffmpeg()
    assert Path(default).is_file()
    assert resolve_ffmpeg(default) == default
    with pytest.raises(PipelineInputError, match="not an executable"):
        resolve_ffmpeg(str(tmp_path / "ffmpeg"))
    with pytest.raises(PipelineInputError, match="not found on PATH"):
        resolve_ffmpeg("no-such-ffmpeg-binary")


# ---------------------------------------------------------------------------------------------------------------
# decoding


def test_decode_d0(videos_dir):
    info = probe_video(videos_dir / "d0.mp4")
    times, frames = zip(*decode_frames(info.path, info))
    assert len(frames) == 78
    np.testing.assert_allclose(times, np.arange(78) / 25.0, atol=1e-9)  # a constant-rate video keeps its own times
    assert all(f.shape == (512, 512, 3) and f.dtype == np.uint8 for f in frames)
    assert frames[0].flags.writeable and frames[0].flags.c_contiguous
    assert 30 < frames[0].mean() < 225  # a real picture, not a black or saturated frame
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # frames differ: not one repeated


def test_rotated_video_decodes_upright(synthetic):
    marker_info = probe_video(synthetic["marker"])
    assert (marker_info.width, marker_info.height, marker_info.rotation) == (64, 48, 0)
    original = next(iter_frames(synthetic["marker"], marker_info)).astype(float)
    white = original.mean(axis=2) > 128
    assert white[:16, :16].all() and white.sum() == 256
    for rotation, k in ((90, 1), (180, 2), (270, 3)):
        info = probe_video(synthetic[f"rot{rotation}"])
        assert info.rotation == rotation
        expected_size = (48, 64) if rotation in (90, 270) else (64, 48)
        assert (info.width, info.height) == expected_size
        frames = list(iter_frames(synthetic[f"rot{rotation}"], info))
        assert len(frames) == info.n_frames == 10
        assert frames[0].shape == (info.height, info.width, 3)
        # display-matrix degrees are counter-clockwise: np.rot90 (k=1 = 90 deg counter-clockwise on screen)
        assert np.abs(frames[0] - np.rot90(original, k)).mean() < 3
        assert np.abs(frames[0] - np.rot90(original, -k)).mean() > 10 or rotation == 180


def test_dropping_a_frame_iterator_early_exits_cleanly(videos_dir):
    """The former pipe decoder's stderr thread crashed the interpreter at exit ("Fatal Python error:
    _enter_buffered_busy") when an iterator was dropped before its end; in-process decoding has no thread."""
    script = (
        "from neural_renderer.video import iter_frames, probe_video\n"
        f"info = probe_video({str(videos_dir / 'd6.mp4')!r})\n"
        "frames = iter_frames(info.path, info)\n"
        "next(frames)\n"
        "kept = [iter_frames(info.path, info) for _ in range(3)]\n"
        "[next(k) for k in kept]\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "Fatal" not in proc.stderr


def test_decoding_a_different_file_than_probed_is_an_error(videos_dir):
    info = probe_video(videos_dir / "d0.mp4")
    more = dataclasses.replace(info, n_frames=80, source_frames=80)
    with pytest.raises(PipelineInputError, match="decoded 78 frames but the probe planned 80"):
        list(iter_frames(info.path, more))


# ---------------------------------------------------------------------------------------------------------------
# pixel shape, frame times, damage (the inputs of issue 11, built with the shipped ffmpeg)


@pytest.fixture(scope="module")
def odd(tmp_path_factory, ffmpeg_exe, videos_dir) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("odd")
    src = videos_dir / "d18.mp4"  # 480x480, 30 fps
    paths = {"sar": d / "sar.mp4", "clip": d / "clip.mp4", "vfr": d / "vfr.mp4", "damaged": d / "damaged.mp4"}
    # stored 512x480 with SAR 15:16: displays as 480x480 (the original d18 frames)
    _ffmpeg(ffmpeg_exe, "-i", str(src), "-frames:v", "10", "-vf", "scale=512:480,setsar=15/16", "-an",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", str(paths["sar"]))  # fmt: skip
    # 90 frames of d18 at 30 fps, a key frame every 30 frames
    _ffmpeg(ffmpeg_exe, "-i", str(src), "-frames:v", "90", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "30",
            str(paths["clip"]))  # fmt: skip
    # variable frame rate: 2 s at 30 fps then 2 s at 15 fps (the counter of testsrc changes every frame)
    for name, rate in (("a", 30), ("b", 15)):
        _ffmpeg(ffmpeg_exe, "-f", "lavfi", "-i", f"testsrc=s=64x48:r={rate}:d=2", "-c:v", "libx264",
                "-pix_fmt", "yuv420p", str(d / f"{name}.mp4"))  # fmt: skip
    (d / "list.txt").write_text("file a.mp4\nfile b.mp4\n")
    _ffmpeg(ffmpeg_exe, "-f", "concat", "-i", str(d / "list.txt"), "-c", "copy", str(paths["vfr"]))
    # 20 KB of zeros in the middle of the clip
    data = bytearray(paths["clip"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 20000] = bytes(20000)
    paths["damaged"].write_bytes(bytes(data))
    return paths


def test_sar_video_is_decoded_at_its_display_shape(odd, videos_dir):
    info = probe_video(odd["sar"])
    assert (info.stored_width, info.stored_height, info.sar) == (512, 480, "15:16")
    assert (info.width, info.height) == (480, 480)  # square pixels: 512 * 15/16 = 480
    frames = list(iter_frames(odd["sar"], info))
    assert len(frames) == 10 and all(f.shape == (480, 480, 3) for f in frames)
    original = next(iter_frames(videos_dir / "d18.mp4", probe_video(videos_dir / "d18.mp4"))).astype(float)
    assert np.abs(frames[0] - original).mean() < 4  # the face has its true proportions again
    stretched = np.asarray(frames[0])[:, np.linspace(0, 479, 512).round().astype(int)][:, 16:496]  # 16/15 too wide
    assert np.abs(stretched - original).mean() > np.abs(frames[0] - original).mean() + 2


def test_vfr_video_is_resampled_to_a_constant_rate_with_true_times(odd, caplog):
    with caplog.at_level(logging.WARNING, logger="neural_renderer.video.probe"):
        info = probe_video(odd["vfr"])
    assert "variable frame rate" in caplog.text and "resampled to a constant 30 fps: 120 frames" in caplog.text
    assert info.vfr and info.resampled and (info.fps, info.n_frames, info.source_frames) == (30.0, 120, 90)
    times, frames = zip(*decode_frames(odd["vfr"], info))
    np.testing.assert_allclose(times, np.arange(120) / 30.0, atol=1e-12)
    assert times[60] == 2.0  # the first 15 fps frame is really at 2.000 s (the average rate put it at 2.622 s)
    source = [f for _, f in zip(range(200), _all_source_frames(odd["vfr"]))]
    assert len(source) == 90
    for k in range(60):  # the 30 fps part: every frame, once
        assert np.array_equal(frames[k], source[k])
    for k in range(60, 120):  # the 15 fps part: each frame shown twice
        assert np.array_equal(frames[k], source[60 + (k - 60) // 2])
    assert not np.array_equal(frames[59], frames[60])
    info15 = probe_video(odd["vfr"], fps=15.0)
    assert (info15.n_frames, info15.fps) == (60, 15.0)
    assert [np.array_equal(a, b) for a, b in zip(iter_frames(odd["vfr"], info15), frames[::2])] == [True] * 60


def _all_source_frames(path: Path):
    """Every decodable frame of the file, in order (PyAV directly: an independent reading)."""
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def test_mid_stream_damage_fails_with_one_line_or_keeps_the_frames_before_it(odd):
    with pytest.raises(PipelineInputError) as exc:
        probe_video(odd["damaged"])
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(odd["damaged"]) + ": the video stream is damaged at ")
    assert re.search(r"\d+ frames are missing or corrupt \(.*\) and \d+ frames follow", message)
    assert "set ingest.allow_partial: true to keep the" in message
    info = probe_video(odd["damaged"], allow_partial=True)
    keep = info.n_frames
    assert 0 < keep < 90 and info.damage and info.cut_s == pytest.approx(keep / 30.0, abs=1e-9)
    assert f"(frame {keep})" in message
    times, frames = zip(*decode_frames(odd["damaged"], info))
    np.testing.assert_allclose(times, np.arange(keep) / 30.0, atol=1e-9)  # no renumbering: true times
    clean = list(iter_frames(odd["clip"], probe_video(odd["clip"])))
    assert all(np.array_equal(a, b) for a, b in zip(frames, clean[:keep]))  # exactly the frames before the damage


def test_damage_at_the_start_fails_even_with_allow_partial(odd, tmp_path):
    data = bytearray(odd["clip"].read_bytes())
    mdat = data.index(b"mdat") + 4
    data[mdat + 64 : mdat + 20064] = bytes(20000)  # the first key frame's data
    path = tmp_path / "start.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(PipelineInputError, match=r"damaged at 0\.000 s \(frame 0\).*no frame before it can be kept"):
        probe_video(path, allow_partial=True)


# ---------------------------------------------------------------------------------------------------------------
# audio


def test_extract_audio(synthetic, tmp_path):
    info = probe_video(synthetic["audio"])
    assert info.has_audio and info.n_frames == 20
    out = tmp_path / "sub" / "audio.wav"
    extract_audio(synthetic["audio"], out)
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
    assert len(samples) / 16000 == pytest.approx(2.0, abs=0.05)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)
    assert sorted(p.name for p in out.parent.iterdir()) == ["audio.wav"]  # no temp file left
    extract_audio(synthetic["audio"], out, sample_rate=8000)  # overwrites in place
    with wave.open(str(out)) as w:
        assert w.getframerate() == 8000


def test_extract_audio_without_audio_stream(videos_dir, tmp_path):
    out = tmp_path / "audio.wav"
    with pytest.raises(PipelineInputError, match="no audio"):
        extract_audio(videos_dir / "d0.mp4", out)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# discovery


def test_discover_videos(tmp_path):
    for name in ["a.mp4", "b-2.MOV", "c_3.webm", "notes.txt", ".hidden.mp4"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.mp4").write_bytes(b"x")
    found = discover_videos(tmp_path)
    assert found == {"a": tmp_path / "a.mp4", "b-2": tmp_path / "b-2.MOV", "c_3": tmp_path / "c_3.webm"}
    assert list(found) == sorted(found)
    assert discover_videos(tmp_path / "missing") == {}
    assert set(VIDEO_EXTENSIONS) == {".mp4", ".mov", ".avi", ".mkv", ".webm"}


@pytest.mark.parametrize("names", [["clip.mp4", "clip.mkv"], ["Clip.mp4", "clip.MOV"]])
def test_discover_same_name_twice_skips_both(tmp_path, names):
    for name in names + ["good.mp4"]:
        (tmp_path / name).write_bytes(b"x")
    found, skipped = scan_videos(tmp_path)
    assert found == {"good": tmp_path / "good.mp4"}
    assert len(skipped) == 1 and all(name in skipped[0] for name in names) and "same video name" in skipped[0]


@pytest.mark.parametrize(
    "name, suggestion",
    [("my clip.mp4", "my_clip.mp4"), ("a.b.mp4", "a_b.mp4"), ("-x.mp4", "x.mp4"), ("_x.mp4", "x.mp4")],
)
def test_discover_skips_bad_names_and_keeps_the_others(tmp_path, name, suggestion, caplog):
    (tmp_path / name).write_bytes(b"x")
    (tmp_path / "good.mp4").write_bytes(b"x")
    found, skipped = scan_videos(tmp_path)
    assert found == {"good": tmp_path / "good.mp4"}
    assert skipped == [
        f"{tmp_path / name}: skipped: video name {Path(name).stem!r} is not allowed; names must match "
        f"{VIDEO_NAME_PATTERN} (letters, digits, '_' and '-', starting with a letter or digit). "
        f"Rename it (e.g. to {suggestion}) to include it"
    ]
    with caplog.at_level(logging.WARNING):
        assert discover_videos(tmp_path) == found
    assert skipped[0] in caplog.text


def test_video_name_pattern():
    ok = ["d0", "A_b-3", "0"]
    bad = ["a.b", "a/b", "-a", "_a", "a b", ""]
    assert all(re.fullmatch(VIDEO_NAME_PATTERN, n) for n in ok)
    assert not any(re.fullmatch(VIDEO_NAME_PATTERN, n) for n in bad)
