"""Video ingest: probe, decode through a pipe, extract audio, discover the raw videos."""

from neural_renderer.video.decode import extract_audio, iter_frames
from neural_renderer.video.discover import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, VIDEO_NAME_PATTERN, discover_audio, discover_videos
from neural_renderer.video.ffmpeg_exe import find_ffprobe, resolve_ffmpeg
from neural_renderer.video.probe import VideoInfo, probe_video, probe_with_ffmpeg, probe_with_ffprobe

__all__ = [
    "AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VIDEO_NAME_PATTERN",
    "VideoInfo",
    "discover_audio",
    "discover_videos",
    "extract_audio",
    "find_ffprobe",
    "iter_frames",
    "probe_video",
    "probe_with_ffmpeg",
    "probe_with_ffprobe",
    "resolve_ffmpeg",
]
