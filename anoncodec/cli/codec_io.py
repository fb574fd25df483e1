"""``anoncodec encode`` / ``anoncodec decode``: images <-> packets.

One input file and ``-o FILE`` converts that file and prints one JSON line. Several inputs
or a folder and ``-o FOLDER`` load the codec once and convert them all (one JSON line per
file, progress bar on stderr): a file that fails is reported, the others are still written,
and the exit status is 2 at the end (:mod:`anoncodec.cli.batch`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from anoncodec.cli.batch import Job, plan_jobs, run_jobs, write_atomic
from anoncodec.cli.checkpoints import checkpoint_help
from anoncodec.cli.guard_options import add_guard_arguments, guard_config

if TYPE_CHECKING:
    import numpy as np

    from anoncodec.packet import Packet

__all__ = ["IMAGE_SUFFIXES", "PACKET_SUFFIX", "add_encode_arguments", "add_decode_arguments", "run_encode",
           "run_decode"]

#: suffixes of the files ``encode`` takes from an input folder
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
#: suffix of the packets ``encode`` writes into a folder (and ``decode`` takes from one)
PACKET_SUFFIX = ".packet"
#: suffix of the images ``decode`` writes into a folder
DECODED_SUFFIX = ".png"

Encoder = Callable[["np.ndarray"], tuple["Packet", "int | None"]]


def add_encode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IMAGE",
                        help="input image (any format Pillow reads; converted to RGB), or several, or folders "
                        f"of them (their {', '.join(IMAGE_SUFFIXES)} files)")
    parser.add_argument("-o", "--output", required=True,
                        help=f"packet file to write; with several inputs or a folder, the folder that gets one "
                        f"<name>{PACKET_SUFFIX} per image (created if missing)")
    parser.add_argument("--checkpoint", help=checkpoint_help())
    parser.add_argument("--onnx-dir", help="encode with ONNX Runtime from an export folder "
                        "(encoder.onnx + tables.npz) instead of PyTorch, as a camera does")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (several inputs)")
    add_guard_arguments(parser, True, "guaranteed mode (default: on): erase the latent of every head CenterFace "
                        "finds before coding, so the packet holds nothing of it (factorized models); "
                        "--no-guard leaves faces to the learned codec alone, which does not hide them "
                        "from detectors (anoncodec/weights/MODEL_CARD.md)")


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="PACKET",
                        help="packet file written by `anoncodec encode` or a camera, or several, or folders of "
                        f"them (their {PACKET_SUFFIX} files)")
    parser.add_argument("-o", "--output", required=True,
                        help="image file to write (.png recommended); with several inputs or a folder, the "
                        f"folder that gets one <name>{DECODED_SUFFIX} per packet (created if missing)")
    parser.add_argument("--checkpoint", help=checkpoint_help())
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (several inputs)")


def _read_rgb(path: str) -> np.ndarray:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from anoncodec.errors import DatasetError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read image {path!r}: {exc}") from exc


def _read_packet(path: str) -> Packet:
    from anoncodec.errors import PacketError
    from anoncodec.packet import unpack

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PacketError(f"cannot read packet {path!r}: {exc}") from exc
    return unpack(data)


def _encoder(args: argparse.Namespace) -> Encoder:
    """``frame -> (packet, heads erased or None without --guard)``, with the codec loaded once."""
    guard = None
    if args.guard:
        from anoncodec.edge.guard import FaceGuard

        guard = FaceGuard(guard_config(args))
    if args.onnx_dir:
        from anoncodec.edge import EdgeEncoder

        d = Path(args.onnx_dir)
        edge = EdgeEncoder(d / "encoder.onnx", d / "tables.npz", guard=guard)
        return lambda frame: (edge.encode(frame), edge.last_guarded if guard is not None else None)

    from anoncodec.codec import load_codec
    from anoncodec.codec.images import frame_to_tensor
    from anoncodec.errors import ConfigError
    from anoncodec.weights import resolve_checkpoint

    model = load_codec(resolve_checkpoint(args.checkpoint))
    if guard is None:
        return lambda frame: (model.compress(frame_to_tensor(frame)), None)
    if model.architecture != "factorized":
        raise ConfigError(f"--guard needs a factorized model; this checkpoint is {model.architecture!r}")
    medians = model.entropy_tables().medians

    def encode(frame: np.ndarray) -> tuple[Packet, int]:
        guarded = 0

        def latent_filter(y):
            nonlocal guarded
            y, guarded = guard.erase(frame, y, model.downsampling, medians)
            return y

        return model.compress(frame_to_tensor(frame), latent_filter), guarded

    return encode


def _encode_file(job: Job, encode: Encoder, frame: np.ndarray | None = None) -> dict:
    from anoncodec.packet import pack

    frame = _read_rgb(job.source) if frame is None else frame
    packet, guarded = encode(frame)
    data = pack(packet)
    write_atomic(job.target, lambda tmp: tmp.write_bytes(data))
    h, w = frame.shape[:2]
    return ({"packet": job.target, "bytes": len(data), "bpp": round(8 * len(data) / (h * w), 4),
             "height": h, "width": w, "model_id": packet.model_id.hex()}
            | ({"guarded_heads": guarded} if guarded is not None else {}))


def run_encode(args: argparse.Namespace) -> int:
    jobs, single = plan_jobs(args.inputs, args.output, IMAGE_SUFFIXES, PACKET_SUFFIX)
    first = _read_rgb(jobs[0].source) if single else None  # a bad image fails before the codec loads
    encode = _encoder(args)
    if single:
        print(json.dumps(_encode_file(jobs[0], encode, first)))
    else:
        run_jobs(jobs, lambda job: _encode_file(job, encode), "encode", progress=not args.no_progress)
    return 0


def _save_image(frame: np.ndarray, target: str) -> None:
    from PIL import Image

    from anoncodec.errors import ConfigError

    image_format = Image.registered_extensions().get(Path(target).suffix.lower())
    if image_format is None:
        raise ConfigError(f"cannot write image {target!r}: unknown suffix; use .png (lossless) or another "
                          "format Pillow writes")
    write_atomic(target, lambda tmp: Image.fromarray(frame).save(tmp, format=image_format))


def run_decode(args: argparse.Namespace) -> int:
    from anoncodec.codec import load_codec
    from anoncodec.codec.images import tensor_to_frame
    from anoncodec.weights import resolve_checkpoint

    jobs, single = plan_jobs(args.inputs, args.output, (PACKET_SUFFIX,), DECODED_SUFFIX)
    first = _read_packet(jobs[0].source) if single else None  # a bad packet fails before the codec loads
    model = load_codec(resolve_checkpoint(args.checkpoint))

    def decode(job: Job, packet: Packet | None = None) -> dict:
        packet = _read_packet(job.source) if packet is None else packet
        _save_image(tensor_to_frame(model.decompress(packet)), job.target)
        return {"image": job.target, "height": packet.height, "width": packet.width}

    if single:
        print(json.dumps(decode(jobs[0], first)))
    else:
        run_jobs(jobs, decode, "decode", progress=not args.no_progress)
    return 0
