"""Privacy attack: can a decoder trained on our latents and clean footage bring faces back?

    .venv/bin/python benchmarks/privacy_attack.py                 # ~10 min on a 2-core CPU
        [--steps 2000] [--init ours|random] [--width N] [--footage PATH ...] [--data SPEC ...]
        [--out docs/results/privacy_attack]

The attacker holds our packets and some clean footage of their own. They encode the
footage with our encoder (same model id), train a decoder without the ROI loss to map the
latents to the *original* frames (:mod:`anoncodec.training.attack`), and decode our
packets with it. The script then runs the evaluation (:mod:`anoncodec.cli.evaluate`) on
held-out images with these rows:

- ``original``: the reference;
- ``ours``: our packets, our decoder;
- ``guard``: guaranteed-mode packets (heads CenterFace finds erased on the camera), our decoder;
- ``attack``: our packets, the attacker's decoder;
- ``attack-guard``: guaranteed-mode packets, the attacker's decoder.

and writes ``OUT/report.md`` (face AP, CenterFace recall, identity leakage, PSNR...) plus
``OUT/attack.json`` (training settings, loss curve, wall time). Footage and test images
must not overlap; by default the attacker trains on photos that ship inside installed
packages (matplotlib's Grace Hopper, ultralytics' bus) plus the bundled vtest excerpt, and
the test set is messi5, basketball1 and ultralytics' zidane.jpg (where installed).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import logging
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

logger = logging.getLogger("privacy_attack")


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)
    return path if path.is_file() else None


def default_footage() -> list[str]:
    """The attacker's clean footage: packaged photos with faces + the bundled vtest excerpt."""
    found = [_package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"),
             _package_file("ultralytics", "assets", "bus.jpg"), ROOT / "data" / "samples" / "vtest_excerpt.avi"]
    return [str(p) for p in found if p is not None]


def default_test_data() -> list[str]:
    """Held-out images with faces (never in the attacker's footage)."""
    found = [ROOT / "data" / "samples" / "messi5.jpg", ROOT / "data" / "samples" / "basketball1.png",
             _package_file("ultralytics", "assets", "zidane.jpg")]
    return [str(p) for p in found if p is not None]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from anoncodec.cli.checkpoints import checkpoint_help

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", help=checkpoint_help("our codec"))
    p.add_argument("--footage", nargs="+", default=None, metavar="PATH",
                   help="attacker's clean footage: images, folders or videos (default: packaged photos + "
                   "data/samples/vtest_excerpt.avi)")
    p.add_argument("--max-frames", type=int, default=30, help="frames taken from each footage video")
    p.add_argument("--data", nargs="+", default=None, metavar="SPEC",
                   help="held-out test images (evaluate --data specs; default: messi5, basketball1, zidane)")
    p.add_argument("--steps", type=int, default=2000, help="attacker's training steps")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step")
    p.add_argument("--crop-size", type=int, default=128, help="crop side, a multiple of the codec's factor")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    p.add_argument("--init", default="ours", choices=["ours", "random"],
                   help="start from our decoder's weights (fastest attack) or from scratch")
    p.add_argument("--width", type=int, default=0, help="decoder width N with --init random (0: ours)")
    p.add_argument("--head-weight", type=float, default=1.0, help="extra fidelity weight inside heads")
    p.add_argument("--device", default="auto", help="torch device for training (auto, cpu, cuda)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "privacy_attack"), help="report folder")
    p.add_argument("--cache", default=str(ROOT / ".cache" / "evaluate"), help="evaluation cache")
    p.add_argument("--save-decoder", help="also save the attacker's decoder (state dict) here")
    p.add_argument("--repeats", type=int, default=3, help="timed encode/decode calls per image")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def attack_methods(codec, decoder, checkpoint_name: str, guard) -> list:
    """The ``attack`` and ``attack-guard`` rows: our (guarded) packets, the attacker's decoder."""
    import torch

    from anoncodec.codec.images import frame_to_tensor
    from anoncodec.evaluation.methods import Method
    from anoncodec.packet import pack, unpack
    from anoncodec.training.attack import attack_decode

    buf = io.BytesIO()
    torch.save(decoder.state_dict(), buf)
    weights = hashlib.sha256(buf.getvalue()).hexdigest()[:16]

    def encoder(use_guard: bool):
        def encode(frame):
            latent_filter = guard.latent_filter(frame, codec) if use_guard else None
            return pack(codec.compress(frame_to_tensor(frame), latent_filter))
        return encode

    def decode(data: bytes):
        return attack_decode(codec, decoder, unpack(data))

    params = {"checkpoint": checkpoint_name, "model_id": codec.model_id().hex(), "attacker_weights": weights}
    return [Method("attack", "attack", "attack: our packets, attacker's decoder", encoder(False), decode, params),
            Method("attack-guard", "attack-guard", "attack on guarded packets", encoder(True), decode,
                   {**params, "guard": True})]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from anoncodec.cli.evaluate import run as run_evaluate
    from anoncodec.cli.main import build_parser
    from anoncodec.codec import load_codec
    from anoncodec.config import DataSourceConfig
    from anoncodec.data import load_source
    from anoncodec.edge.guard import FaceGuard
    from anoncodec.errors import AnoncodecError
    from anoncodec.training.attack import AttackConfig, train_attack_decoder
    from anoncodec.weights import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(args.checkpoint)
        codec = load_codec(checkpoint)
        footage = args.footage or default_footage()
        data = args.data or default_test_data()
        overlap = {Path(p).resolve() for p in footage} & {Path(p).resolve() for p in data}
        if overlap:
            raise AnoncodecError(f"footage and test data overlap ({sorted(map(str, overlap))}); the attack must be "
                                 "measured on images the attacker never saw")
        items = []
        for path in footage:
            items += load_source(DataSourceConfig(kind="footage", path=path, max_frames=args.max_frames,
                                                  val_fraction=0.0))
        logger.info("attacker footage: %d frames from %s", len(items), footage)
        config = AttackConfig(steps=args.steps, batch_size=args.batch_size, crop_size=args.crop_size, lr=args.lr,
                              init=args.init, width=args.width, head_weight=args.head_weight, seed=args.seed,
                              device=args.device)
        result = train_attack_decoder(codec, items, config, progress=not args.no_progress)
        codec = codec.cpu()
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        if args.save_decoder:
            import torch

            torch.save(result.decoder.state_dict(), args.save_decoder)
        (out / "attack.json").write_text(json.dumps({
            "checkpoint": checkpoint.name, "footage": [str(Path(p).name) for p in footage],
            "footage_frames": len(items), "test_data": [str(Path(p).name) for p in data],
            "config": config.to_dict(), "wall_s": round(result.wall_s, 1),
            "loss_history": [[s, round(v, 6)] for s, v in result.history]}, indent=1) + "\n")

        evaluate = build_parser().parse_args(
            ["evaluate", *sum((["--data", d] for d in data), []), "--methods", "original", "ours", "guard",
             "--checkpoint", str(checkpoint), "--out", str(out), "--cache", args.cache,
             "--repeats", str(args.repeats), "--grid-images", str(len(data))]
            + (["--no-progress"] if args.no_progress else []))
        command = shlex.join(["python", "benchmarks/privacy_attack.py", *(argv if argv is not None else sys.argv[1:])])
        return run_evaluate(evaluate, attack_methods(codec, result.decoder, checkpoint.name, FaceGuard()), command)
    except AnoncodecError as exc:
        print(f"privacy_attack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
