"""Audio decoding and per-video-frame log-mel windows.

Video frame t (shown from t / fps) gets `window` consecutive mel frames centred on t / fps. With librosa's centred
STFT, mel frame m is centred on m * hop, so the window of frame t is mel frames round(t / fps / hop) - window / 2 +
[0, window); frames outside the clip are padded with the clip's quietest value per mel bin (silence).
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

from neural_renderer.audio.config import FeatureConfig
from neural_renderer.errors import PipelineInputError
from neural_renderer.video.ffmpeg_exe import QUIET, check_readable, input_url, resolve_ffmpeg, stderr_tail


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV -> (float32 mono samples in [-1, 1], sample rate). An empty WAV gives zero samples."""
    try:
        with wave.open(str(path), "rb") as w:
            sr, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            raw = w.readframes(n)
    except (OSError, EOFError, wave.Error) as exc:
        raise PipelineInputError(path, f"not a readable WAV file ({exc})") from None
    if width != 2:
        raise PipelineInputError(path, f"expected 16-bit PCM, got {8 * width}-bit samples")
    samples = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    if ch > 1:
        samples = samples.reshape(-1, ch).mean(1)
    return samples, sr


def decode_audio(path: str | Path, sample_rate: int = 16000, ffmpeg: str | None = None) -> np.ndarray:
    """Any audio or video file -> float32 mono samples at `sample_rate` (the first audio stream, via ffmpeg).

    Raises PipelineInputError "no audio track" when the file has no audio stream (or an empty one).
    """
    check_readable(path)
    exe = resolve_ffmpeg(ffmpeg)
    cmd = [
        exe,
        *QUIET,
        "-nostats",
        "-loglevel",
        "error",
        "-i",
        input_url(path),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-ac",
        "1",
        "-ar",
        str(int(sample_rate)),
        "-f",
        "s16le",
        "-acodec",
        "pcm_s16le",
        "pipe:",
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        if "matches no streams" in err or "does not contain any stream" in err:
            raise PipelineInputError(path, "no audio track")
        raise PipelineInputError(path, f"cannot decode the audio ({stderr_tail(err)})")
    samples = np.frombuffer(proc.stdout, "<i2").astype(np.float32) / 32768.0
    if samples.size == 0:
        raise PipelineInputError(path, "no audio track (zero audio samples)")
    return samples


def load_audio(path: str | Path, sample_rate: int = 16000, ffmpeg: str | None = None) -> np.ndarray:
    """A WAV at `sample_rate` is read directly (the ingest stage's audio.wav); anything else goes through ffmpeg."""
    path = Path(path)
    if path.suffix.lower() == ".wav":
        try:
            samples, sr = read_wav(path)
        except PipelineInputError:
            samples, sr = None, None
        if samples is not None and sr == sample_rate:
            if samples.size == 0:
                raise PipelineInputError(path, "no audio track (the WAV has zero samples)")
            return samples
    return decode_audio(path, sample_rate, ffmpeg)


def log_mel(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """(N,) samples at cfg.sample_rate -> (n_mels, M) natural-log mel power, mel frame m centred on m * hop."""
    import librosa

    n_fft = int(round(cfg.win_ms * 1e-3 * cfg.sample_rate))
    hop = int(round(cfg.hop_ms * 1e-3 * cfg.sample_rate))
    mel = librosa.feature.melspectrogram(
        y=np.asarray(samples, np.float32),
        sr=cfg.sample_rate,
        n_fft=n_fft,
        hop_length=hop,
        win_length=n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        center=True,
        power=2.0,
    )
    return np.log(mel + 1e-8).astype(np.float32)


def n_video_frames(n_samples: int, sample_rate: int, fps: float) -> int:
    """Video frames covering the audio: round(duration * fps), at least 1."""
    return max(1, int(round(n_samples / sample_rate * fps)))


def frame_windows(
    mel: np.ndarray, n_frames: int, fps: float, hop_s: float, window: int, times_s: np.ndarray | None = None
) -> np.ndarray:
    """(n_mels, M) -> (n_frames, n_mels, window): the mel frames centred on each video frame's timestamp.

    `times_s`: the frames' times on the audio's clock (a video's `timestamps_s`: audio.wav starts at its time 0);
    default t / fps."""
    n_mels, m = mel.shape
    times = np.arange(n_frames) / fps if times_s is None else np.asarray(times_s, np.float64)[:n_frames]
    if len(times) != n_frames:
        raise ValueError(f"{len(times)} frame times for {n_frames} frames")
    centre = np.rint(times / hop_s).astype(np.int64)
    idx = centre[:, None] - window // 2 + np.arange(window)[None]
    pad_value = mel.min(1, keepdims=True) if m else np.zeros((n_mels, 1), mel.dtype)
    lo, hi = max(0, -int(idx.min())), max(0, int(idx.max()) - m + 1)
    padded = np.concatenate([np.repeat(pad_value, lo, 1), mel, np.repeat(pad_value, hi, 1)], axis=1)
    return np.ascontiguousarray(padded[:, idx + lo].transpose(1, 0, 2))


def normalise(mel: np.ndarray, mode: str) -> np.ndarray:
    """Per-clip mean/variance normalisation per mel bin ('utterance'), or unchanged ('none')."""
    if mode == "none":
        return mel
    mean = mel.mean(1, keepdims=True)
    std = np.maximum(mel.std(1, keepdims=True), 1e-3)
    return ((mel - mean) / std).astype(np.float32)


def audio_features(
    samples: np.ndarray, fps: float, cfg: FeatureConfig, n_frames: int | None = None, times_s: np.ndarray | None = None
) -> np.ndarray:
    """Samples at cfg.sample_rate -> (T, n_mels, window) float32, T = n_frames or round(duration * fps); `times_s`
    (optional) places each frame's window at its true time (see `frame_windows`)."""
    if n_frames is None:
        n_frames = n_video_frames(len(samples), cfg.sample_rate, fps) if times_s is None else len(times_s)
    mel = normalise(log_mel(samples, cfg), cfg.normalise)
    return frame_windows(mel, n_frames, fps, cfg.hop_ms * 1e-3, cfg.window, times_s)
