"""`portrait`: the command line for what users do outside the Snakemake DAG (also `python -m neural_renderer`).

Argument parsing and printing: each subcommand calls the package (`drive.drive`, `describe.describe`,
`stages.pipeline.setup` and `preprocess`, `sections.explain`, `demo.run_demo`); no setting is resolved here. Exit
codes: 0 done, 1 bad input (one line on stderr naming the file and the reason: `PipelineInputError`), 2 wrong usage
(argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from neural_renderer import __version__
from neural_renderer.errors import PipelineInputError

RAW = argparse.RawDescriptionHelpFormatter

RENDER_HELP = """\
Drive a trained renderer (model.pt) with any motion and write an mp4.

The motion is a tracking.h5 (the model's own video or another identity's, fitted with the same morphable model), or
a CSV/NPZ of per-frame parameters in tracking.h5's units:
  expression   one CSV column per coefficient named as the model's basis (jawOpen, ...; `portrait inspect model.pt`
               lists them), values in [0, 1]; NPZ: expression (T, Ke) + expression_names (Ke,)
  rotation     rx, ry, rz: axis-angle (rad) of the model -> camera rotation, as fit/axis_angle;
               NPZ: axis_angle (T, 3) or rotation (T, 3, 3)
  translation  tx, ty, tz: model -> camera translation in model units (ICT: cm), camera x right, y down, z forward
  gaze         gaze_pitch_deg, gaze_yaw_deg: relative to the head (deg); NPZ: gaze_pitch_yaw_deg (T, 2)
  optional     frame (ignored), valid (0/1: frames that count for the reference pose); NPZ: valid, fps
A motion in another expression basis is refused. Transfer options are the reenact rule's: relative (default) moves
the target like the motion about the target's own mean pose and neutral expression, taken from the target's
tracking.h5 (found beside the model as the workflow lays it out, or --target-tracking); absolute renders the values
as given.

example:
  portrait render results/d6/renderer/model.pt --motion results/d0/tracking.h5 --out d0_on_d6.mp4 \\
      --frames 0:100 --audio data/raw/d0.mp4
  portrait render model.pt --motion smile.csv --transfer absolute --fps 25 --out smile.mp4"""

INSPECT_HELP = """\
Summarise a result file: any HDF5 the pipeline writes (stage, provenance, datasets with shapes, units and validity
counts checked against the schema, QC figures) or a model.pt (preset, iterations, resolution, split, expression
basis).

example:
  portrait inspect results/d0/tracking.h5
  portrait inspect results/d0/renderer/model.pt --json"""

TRACK_HELP = """\
Preprocess one video without Snakemake: ingest -> track -> crop -> fit -> gaze -> assemble -> qc, with the same
stage runners, settings (config.yaml, per-video overrides by the output folder's name) and file names as the
workflow. Model files default to the config's `models:` (fetch them once with
`snakemake --cores 1 resources/models/face_landmarker.task resources/models/ict_face_light_face.npz`).

example:
  portrait track data/raw/me.mp4 --out results/me
  portrait track clip.mov --out /tmp/clip --resolution 256 --device cpu"""

CONFIG_HELP = """\
Print the configuration a video runs with: every key, its effective value, and where the value comes from
(default: the config dataclasses, the one place defaults are written; preset NAME: the renderer/audio preset that
runs (`auto`: as resolved on this machine); config: config.yaml; override: the video's `overrides:` entry).
docs/CONFIG.md lists every key with its type, default and meaning.

example:
  portrait config                      # the settings every video shares
  portrait config --video d6           # with d6's overrides
  portrait config --video d6 --json    # for scripts
  portrait config --changed            # only what config.yaml and the overrides set"""

DEMO_HELP = """\
Run the README's demo: the shipped sample clip (data/raw/sample.mp4) through the whole workflow
(`snakemake --cores all`), then the report (`snakemake --report report.html`); prints where the report is.
About a quarter of an hour on 2 CPU cores, plus the model downloads on first use.

example:
  portrait demo --dry-run     # what would run
  portrait demo"""


def frame_range(text: str) -> tuple[int, int | None]:
    """START:END (END exclusive, either may be empty, negative counts from the end) or a frame count N (= 0:N)."""
    try:
        if ":" not in text:
            return 0, int(text)
        a, b = text.split(":", 1)
        return int(a) if a else 0, int(b) if b else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"frame range must be START:END or N, got {text!r}") from None


def cmd_render(args: argparse.Namespace) -> int:
    from neural_renderer.config import build_dataclass
    from neural_renderer.drive import drive
    from neural_renderer.reenact.config import ReenactConfig
    from neural_renderer.video.ffmpeg_exe import resolve_ffmpeg

    if Path(args.out).suffix.lower() != ".mp4":
        raise PipelineInputError(args.out, "the output must be an .mp4 file")
    modes = {k: getattr(args, k) or args.transfer for k in ("expression", "pose", "gaze")}
    options = {
        "side_by_side": args.side_by_side,
        "test_latent": args.test_latent,
        "device": args.device,
        "neutral_percentile": args.neutral_percentile,
        "smoothing_sigma": args.smoothing_sigma,
        "batch_size": args.batch_size,
        "crf": args.crf,
        **modes,
    }
    cfg = build_dataclass(ReenactConfig, {k: v for k, v in options.items() if v is not None})
    start, stop = args.frames
    result = drive(
        args.model,
        args.motion,
        args.out,
        cfg=cfg,
        ffmpeg=resolve_ffmpeg(args.ffmpeg),
        target_tracking=args.target_tracking,
        start=start,
        stop=stop,
        fps=args.fps,
        audio=args.audio,
        audio_start_s=args.audio_start,
        out_h5=args.h5,
    )
    print(
        f"{args.out}: {len(result.frames)} frames from {result.first_frame}, {result.fps:.4g} fps"
        + (f", frames in {args.h5}" if args.h5 else "")
    )
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from neural_renderer.describe import describe, to_text

    summary = describe(args.file)
    print(json.dumps(summary, indent=2, default=str) if args.json else to_text(summary))
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from neural_renderer.stages.pipeline import Overrides, preprocess, setup

    out = Path(args.out)
    given = Overrides(args.landmarker, args.morphable, args.kind, args.correspondence, args.resolution, args.device)
    models, cfg = setup(_config_path(args.config), out, given)
    tracking = preprocess(args.video, out, models, cfg)
    stats = json.loads((out / "qc" / "stats.json").read_text())
    print(
        f"{tracking}: {stats['n_valid']}/{stats['n_frames']} frames with a face, reprojection error "
        f"median {stats['reprojection_error_px']['median'] or float('nan'):.2f} px; contact sheet "
        f"{out / 'qc' / 'contact_sheet.png'}"
    )
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from neural_renderer.config import read_config
    from neural_renderer.presets import place
    from neural_renderer.sections import explain

    config_path = _config_path(args.config)
    rows = explain(read_config(config_path), args.video, place("auto", "auto").preset.name)
    if args.changed:
        rows = [r for r in rows if r.source in ("config", "override")]
    if args.json:
        print(json.dumps([{"key": r.key, "value": r.value, "source": r.source} for r in rows], indent=2))
        return 0
    print(f"# {config_path}" + (f", video {args.video}" if args.video else ""))
    width = max((len(r.key) for r in rows), default=0)
    for r in rows:
        print(f"{r.key:<{width}}  {json.dumps(r.value):<24}  {r.source}")
    return 0


def _config_path(given: str | None) -> Path:
    from neural_renderer.config import REPO_ROOT

    local = Path("config.yaml")
    return Path(given) if given else (local if local.is_file() else REPO_ROOT / "config.yaml")


def cmd_demo(args: argparse.Namespace) -> int:
    from neural_renderer.demo import run_demo

    report = run_demo(args.directory, cores=args.cores, dry_run=args.dry_run)
    print(f"report: {report}" + (" (after the real run; this was a dry run)" if args.dry_run else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from neural_renderer.reenact.config import ReenactConfig  # light: the defaults quoted in --help

    parser = argparse.ArgumentParser(
        prog="portrait",
        formatter_class=RAW,
        description="Portrait pipeline from the command line (the workflow itself runs with `snakemake`).",
        epilog="example:\n  portrait inspect results/d0/tracking.h5\n"
        "  portrait render MODEL.pt --motion FILE --out OUT.mp4\n"
        "exit codes: 0 done, 1 bad input (one line naming the file), 2 wrong usage",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors (no progress bars)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "render", help="drive a trained renderer with a motion file", description=RENDER_HELP, formatter_class=RAW
    )
    p.add_argument("model", help="renderer model.pt")
    p.add_argument("--motion", required=True, help="tracking.h5, .csv or .npz")
    p.add_argument("--out", required=True, help="output .mp4 (written atomically)")
    p.add_argument(
        "--frames",
        type=frame_range,
        default=(0, None),
        metavar="START:END",
        help="motion frames to render, END exclusive (default: all)",
    )
    p.add_argument("--fps", type=float, help="output frame rate (default: the motion's, else the model's)")
    p.add_argument("--audio", help="audio to mux (any file ffmpeg reads, e.g. the driver's video)")
    p.add_argument("--audio-start", type=float, metavar="SECONDS", help="audio offset (default: START / fps, in sync)")
    p.add_argument("--test-latent", choices=("mean", "first", "zero"), help="latent code (default: the model's config)")
    p.add_argument("--target-tracking", help="the model's tracking.h5 for relative transfer (default: found beside it)")
    p.add_argument("--transfer", choices=("relative", "absolute"), default=None, help="expression, pose and gaze mode")
    for name in ("expression", "pose", "gaze"):
        p.add_argument(
            f"--{name}", choices=("relative", "absolute"), help=f"{name} transfer mode (overrides --transfer)"
        )
    p.add_argument(
        "--neutral-percentile",
        type=float,
        help=f"percentile taken as the neutral expression (default {ReenactConfig.neutral_percentile})",
    )
    p.add_argument(
        "--smoothing-sigma",
        type=float,
        help=f"temporal Gaussian smoothing in frames (default {ReenactConfig.smoothing_sigma})",
    )
    p.add_argument("--side-by-side", action="store_true", help="driver crop | render (tracking.h5 motions only)")
    p.add_argument("--h5", help="also write the frames as a `rendered` HDF5")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--crf", type=int, help=f"H.264 quality (default {ReenactConfig.crf})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--ffmpeg", help="ffmpeg binary (default: the one shipped by imageio-ffmpeg)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser(
        "inspect", help="summarise a result .h5 or model.pt", description=INSPECT_HELP, formatter_class=RAW
    )
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "track", help="preprocess one video without Snakemake", description=TRACK_HELP, formatter_class=RAW
    )
    p.add_argument("video")
    p.add_argument("--out", required=True, help="output folder (the workflow's results/{video}/ layout)")
    p.add_argument("--config", help="workflow config (default: ./config.yaml, else the repository's)")
    p.add_argument("--landmarker", help="face_landmarker.task (default: config models.face_landmarker)")
    p.add_argument("--morphable", help="morphable model file (default: config models.morphable_model)")
    p.add_argument("--kind", choices=("auto", "ict", "flame", "bfm"), help="morphable model kind")
    p.add_argument("--correspondence", help="correspondence .npz (default: the workflow's, else made in --out)")
    p.add_argument("--resolution", type=int, choices=(256, 512, 1024), help="crop resolution (default: config)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="fit device (default: config)")
    p.set_defaults(func=cmd_track)

    p = sub.add_parser(
        "config", help="print a video's effective configuration", description=CONFIG_HELP, formatter_class=RAW
    )
    p.add_argument("--video", help="apply this video's overrides (its name in data/raw/, without the extension)")
    p.add_argument("--config", help="workflow config (default: ./config.yaml, else the repository's)")
    p.add_argument("--changed", action="store_true", help="only the keys config.yaml or the overrides set")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "demo", help="run the README's demo on the shipped sample", description=DEMO_HELP, formatter_class=RAW
    )
    p.add_argument("--dry-run", action="store_true", help="only show what would run")
    p.add_argument("--cores", default="all", help="as snakemake --cores (default: all)")
    p.add_argument("--directory", default=None, help="working directory (default: the repository checkout)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress_setting = os.environ.get("PORTRAIT_PROGRESS")
    if args.quiet:
        os.environ["PORTRAIT_PROGRESS"] = "0"  # restored below: main() also runs in-process (tests, notebooks)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if args.command == "demo" and args.directory is None:
        from neural_renderer.config import REPO_ROOT

        args.directory = REPO_ROOT
    try:
        return args.func(args)
    except PipelineInputError as exc:
        message = (str(exc).splitlines() or [repr(exc)])[0]
        print(f"portrait {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"portrait {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if progress_setting is None:
            os.environ.pop("PORTRAIT_PROGRESS", None)
        else:
            os.environ["PORTRAIT_PROGRESS"] = progress_setting
