"""Cross-identity reenactment: a driving video's expression, head pose and gaze rendered by another identity's
trained renderer (`transfer.py`: pure maths; `render.py`: files in, mp4 + frames HDF5 out)."""

from neural_renderer.reenact.config import ReenactConfig

__all__ = ["ReenactConfig"]
