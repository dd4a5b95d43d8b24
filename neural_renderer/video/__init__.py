"""Video ingest: probe and decode in-process (PyAV), extract audio (ffmpeg), discover the raw videos."""

from neural_renderer.video.decode import decode_frames, extract_audio, has_audio_stream, iter_frames
from neural_renderer.video.discover import (
    AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VIDEO_NAME_PATTERN,
    discover_audio,
    discover_videos,
    scan_videos,
)
from neural_renderer.video.ffmpeg_exe import resolve_ffmpeg
from neural_renderer.video.probe import VideoInfo, load_probe, probe_video

__all__ = [
    "AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VIDEO_NAME_PATTERN",
    "VideoInfo",
    "decode_frames",
    "discover_audio",
    "discover_videos",
    "extract_audio",
    "has_audio_stream",
    "iter_frames",
    "load_probe",
    "probe_video",
    "resolve_ffmpeg",
    "scan_videos",
]
