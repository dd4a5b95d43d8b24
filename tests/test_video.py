"""Video ingest on real files: probing, piped decoding, rotation, audio, discovery and bad input."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from neural_renderer.errors import PipelineInputError
from neural_renderer.video import (
    VIDEO_EXTENSIONS,
    VIDEO_NAME_PATTERN,
    VideoInfo,
    discover_videos,
    extract_audio,
    find_ffprobe,
    iter_frames,
    probe_video,
    probe_with_ffmpeg,
    probe_with_ffprobe,
    resolve_ffmpeg,
)
from neural_renderer.video.probe import header_from_ffmpeg_stderr, header_from_ffprobe

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
    _ffmpeg(ffmpeg_exe, "-f", "lavfi", "-i", "testsrc=s=64x48:r=10", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(audio))  # fmt: skip
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


def test_probe_audio(videos_dir):
    # The README says "no audio tracks", but d6/d12/d18 do carry an AAC stream; d0 has none.
    assert not probe_video(videos_dir / "d0.mp4").has_audio
    assert probe_video(videos_dir / "d6.mp4").has_audio


def test_ffprobe_path_matches_fallback(videos_dir, synthetic, ffmpeg_exe):
    ffprobe = find_ffprobe(ffmpeg_exe)
    if ffprobe is None:
        pytest.skip("no ffprobe beside the ffmpeg or on PATH (imageio-ffmpeg ships none)")
    for path in [videos_dir / "d0.mp4", videos_dir / "d6.mp4", synthetic["rot90"], synthetic["rot270"], synthetic["audio"]]:
        a, b = probe_with_ffprobe(path, ffprobe, ffmpeg=ffmpeg_exe), probe_with_ffmpeg(path, ffmpeg=ffmpeg_exe)
        assert a == b, (path, a, b)


FFMPEG_SUMMARY = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/x/phone.mov':
  Metadata:
    major_brand     : qt
  Duration: 00:00:10.01, start: 0.000000, bitrate: 8000 kb/s
  Stream #0:0[0x1](und): Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv, bt709), 1920x1080, 7900 kb/s, 29.97 fps, 29.97 tbr, 600 tbn (default)
    Metadata:
      handler_name    : Core Media Video
    Side data:
      Display Matrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, mono, fltp, 96 kb/s (default)
  Stream #0:2[0x3](und): Video: mjpeg (Baseline), yuvj420p(pc), 320x240, 90k tbr, 90k tbn (attached pic)
At least one output file must be specified
"""

FFPROBE_JSON = {
    "streams": [
        {"index": 0, "codec_name": "hevc", "codec_type": "video", "width": 1920, "height": 1080, "r_frame_rate": "30000/1001",
         "avg_frame_rate": "30000/1001", "nb_frames": "300", "disposition": {"attached_pic": 0},
         "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
        {"index": 1, "codec_name": "aac", "codec_type": "audio", "disposition": {"attached_pic": 0}},
        {"index": 2, "codec_name": "mjpeg", "codec_type": "video", "width": 320, "height": 240, "r_frame_rate": "90000/1",
         "avg_frame_rate": "0/0", "disposition": {"attached_pic": 1}},
    ]
}  # fmt: skip


def test_both_header_parsers_agree_on_a_phone_style_video():
    """Pure parsers on a typical phone video (clockwise-90 display matrix, NTSC rate, cover art): same header."""
    a = header_from_ffmpeg_stderr("phone.mov", FFMPEG_SUMMARY)
    b = header_from_ffprobe("phone.mov", FFPROBE_JSON)
    assert dataclasses.replace(b, header_frames=None) == a
    assert (a.coded_width, a.coded_height, a.rotation, a.codec, a.has_audio) == (1920, 1080, 270, "hevc", True)
    assert a.fps == pytest.approx(30000 / 1001, abs=1e-12)
    assert b.header_frames == 300
    legacy = FFMPEG_SUMMARY.replace("    Side data:\n      Display Matrix: rotation of -90.00 degrees\n", "      rotate          : 90\n")
    assert header_from_ffmpeg_stderr("phone.mov", legacy).rotation == 270  # legacy tag is clockwise


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
    [("missing", "does not exist"), ("empty", "empty"), ("text", "not a readable video"), ("truncated", "not a readable video")],
)
def test_bad_input_is_a_clear_error(tmp_path, videos_dir, kind, needle):
    path = _bad_file(kind, tmp_path, videos_dir / "d0.mp4")
    with pytest.raises(PipelineInputError, match=needle) as exc:
        probe_video(path)
    assert str(exc.value).startswith(str(path))
    if kind in ("text", "truncated"):  # decoding with a made-up probe fails just as clearly, naming ffmpeg's reason
        fake = VideoInfo(str(path), 64, 64, 25.0, 10, 0.4, 0, False, "h264")
        with pytest.raises(PipelineInputError, match="ffmpeg failed .*Invalid data") as exc:
            list(iter_frames(path, fake))
        assert str(exc.value).startswith(str(path))


def test_directory_is_not_a_video(tmp_path):
    with pytest.raises(PipelineInputError, match="not a regular file"):
        probe_video(tmp_path)


def test_truncated_file_with_front_index_decodes_the_frames_that_exist(synthetic):
    """Probing succeeds (the index is intact) and counts the readable frames; decoding yields them, no error."""
    info = probe_video(synthetic["truncated_front_index"])
    assert 0 < info.n_frames < 78
    frames = list(iter_frames(synthetic["truncated_front_index"], info))
    assert 0 < len(frames) <= info.n_frames
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
    frames = list(iter_frames(info.path, info))
    assert len(frames) == 78
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


def test_decode_cleans_up_ffmpeg_on_early_close(videos_dir):
    info = probe_video(videos_dir / "d6.mp4")
    frames = iter_frames(info.path, info)
    next(frames)
    assert _ffmpeg_children(), "the decoder subprocess should be running"
    frames.close()
    assert not _ffmpeg_children()
    for i, _ in enumerate(iter_frames(info.path, info)):  # break out of a for loop: the generator is collected
        if i == 3:
            break
    assert not _ffmpeg_children()


def _ffmpeg_children() -> list[int]:
    """Live (or zombie) ffmpeg processes whose parent is this test process."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        m = re.match(r"\d+ \((.*)\) \S+ (\d+)", text)
        if m and int(m.group(2)) == os.getpid() and "ffmpeg" in m.group(1):
            pids.append(int(stat.parent.name))
    return pids


def test_stream_ending_mid_frame_is_an_error(videos_dir):
    info = probe_video(videos_dir / "d0.mp4")
    wrong = dataclasses.replace(info, width=500)  # 78 * 512*512*3 bytes is not a whole number of 500x512 frames
    with pytest.raises(PipelineInputError, match="mid-frame"):
        list(iter_frames(info.path, wrong))


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
def test_discover_same_name_twice(tmp_path, names):
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(PipelineInputError) as exc:
        discover_videos(tmp_path)
    assert all(name in str(exc.value) for name in names)


@pytest.mark.parametrize("name", ["my video.mp4", "a.b.mp4", "-x.mp4", "_x.mp4"])
def test_discover_rejects_bad_names(tmp_path, name):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(PipelineInputError, match="rename"):
        discover_videos(tmp_path)


def test_video_name_pattern():
    ok = ["d0", "A_b-3", "0"]
    bad = ["a.b", "a/b", "-a", "_a", "a b", ""]
    assert all(re.fullmatch(VIDEO_NAME_PATTERN, n) for n in ok)
    assert not any(re.fullmatch(VIDEO_NAME_PATTERN, n) for n in bad)
