"""``anoncodec encode`` / ``anoncodec decode``: image <-> packet."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anoncodec.cli.checkpoints import checkpoint_help


def add_encode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="input image (any format Pillow reads; converted to RGB)")
    parser.add_argument("-o", "--output", required=True, help="packet file to write")
    parser.add_argument("--checkpoint", help=checkpoint_help())
    parser.add_argument("--onnx-dir", help="encode with ONNX Runtime from an export folder "
                        "(encoder.onnx + tables.npz) instead of PyTorch, as a camera does")
    parser.add_argument("--guard", action=argparse.BooleanOptionalAction, default=True,
                        help="guaranteed mode (default: on): erase the latent of every head CenterFace "
                        "finds before coding, so the packet holds nothing of it (factorized models); "
                        "--no-guard leaves faces to the learned codec alone, which does not hide them "
                        "from detectors (anoncodec/weights/MODEL_CARD.md)")
    parser.add_argument("--guard-threshold", type=float, default=0.3,
                        help="CenterFace score above which --guard erases a face")
    parser.add_argument("--guard-margin", type=int, default=1,
                        help="latent cells --guard erases around each head")
    parser.add_argument("--guard-upscale", type=float, default=1.0,
                        help="also look for faces in the image enlarged by this factor (small faces)")


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("packet", help="packet file written by `anoncodec encode` or a camera")
    parser.add_argument("-o", "--output", required=True, help="image file to write (.png recommended)")
    parser.add_argument("--checkpoint", help=checkpoint_help())


def _read_rgb(path: str):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from anoncodec.errors import DatasetError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read image {path!r}: {exc}") from exc


def run_encode(args: argparse.Namespace) -> int:
    from anoncodec.packet import pack

    frame = _read_rgb(args.image)
    guard = None
    if args.guard:
        from anoncodec.edge.guard import FaceGuard, GuardConfig

        guard = FaceGuard(GuardConfig(args.guard_threshold, args.guard_margin, args.guard_upscale))
    guarded = 0
    if args.onnx_dir:
        from anoncodec.edge import EdgeEncoder

        d = Path(args.onnx_dir)
        encoder = EdgeEncoder(d / "encoder.onnx", d / "tables.npz", guard=guard)
        packet = encoder.encode(frame)
        guarded = encoder.last_guarded
    else:
        from anoncodec.codec.images import frame_to_tensor
        from anoncodec.codec import load_codec
        from anoncodec.weights import resolve_checkpoint

        model = load_codec(resolve_checkpoint(args.checkpoint))
        latent_filter = None
        if guard is not None:
            from anoncodec.errors import ConfigError

            if model.architecture != "factorized":
                raise ConfigError(f"--guard needs a factorized model; this checkpoint is {model.architecture!r}")

            def latent_filter(y):
                nonlocal guarded
                y, guarded = guard.erase(frame, y, model.downsampling, model.entropy_tables().medians)
                return y
        packet = model.compress(frame_to_tensor(frame), latent_filter)
    data = pack(packet)
    Path(args.output).write_bytes(data)
    h, w = frame.shape[:2]
    print(json.dumps({"packet": args.output, "bytes": len(data), "bpp": round(8 * len(data) / (h * w), 4),
                      "height": h, "width": w, "model_id": packet.model_id.hex()}
                     | ({"guarded_heads": guarded} if guard is not None else {})))
    return 0


def run_decode(args: argparse.Namespace) -> int:
    from PIL import Image

    from anoncodec.codec import load_codec
    from anoncodec.codec.images import tensor_to_frame
    from anoncodec.errors import PacketError
    from anoncodec.packet import unpack
    from anoncodec.weights import resolve_checkpoint

    try:
        data = Path(args.packet).read_bytes()
    except OSError as exc:
        raise PacketError(f"cannot read packet {args.packet!r}: {exc}") from exc
    packet = unpack(data)
    model = load_codec(resolve_checkpoint(args.checkpoint))
    frame = tensor_to_frame(model.decompress(packet))
    Image.fromarray(frame).save(args.output)
    print(json.dumps({"image": args.output, "height": packet.height, "width": packet.width}))
    return 0
