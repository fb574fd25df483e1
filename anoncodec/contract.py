"""The serving contract: the ensembles a camera calls, their tensors, the camera modes.

Standard library only, so that the model-repository generator, the camera client, the
locustfile, the benchmarks and the fuzzer can all import it without torch or tritonclient.
``docs/ARCHITECTURE.md`` ("Contract") describes what each tensor holds.

    frames:   FRAME  (uint8 [H, W, 3] RGB)   -> anonymize_frame   -> ANONYMIZED, BOXES, SCORES, BITS
    packets:  PACKET (bytes [1], packet.py)  -> analyze_bitstream -> ANONYMIZED, BOXES, SCORES
    stream:   PACKET (keyframes and deltas of one camera's sequence: a correlation ID per
              camera, START on its first request)  -> analyze_stream -> ANONYMIZED, BOXES, SCORES
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TensorSpec",
    "EnsembleSpec",
    "FRAME",
    "PACKET",
    "ANONYMIZED",
    "BOXES",
    "SCORES",
    "BITS",
    "ANONYMIZE_FRAME",
    "ANALYZE_BITSTREAM",
    "ANALYZE_STREAM",
    "SEQUENCE_MODES",
    "STATELESS_ENSEMBLE_NAMES",
    "ENSEMBLES",
    "ENSEMBLE_NAMES",
    "MODES",
    "DEFAULT_MODE",
    "DEFAULT_REPOSITORY",
    "MAX_FRAME_HEIGHT",
    "MAX_FRAME_WIDTH",
    "ensemble",
    "ensemble_for_mode",
]


@dataclass(frozen=True)
class TensorSpec:
    """One public tensor: its Triton name, datatype (``"UINT8"``, ``"BYTES"``...) and dims
    (``-1``: any size; Triton's batch dimension is not part of them)."""

    name: str
    datatype: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class EnsembleSpec:
    """One served ensemble: its name, what a request sends and what it may ask back."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input(self) -> TensorSpec:
        """The single input every ensemble of this contract has."""
        return self.inputs[0]

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


FRAME = TensorSpec("FRAME", "UINT8", (-1, -1, 3))
PACKET = TensorSpec("PACKET", "BYTES", (1,))
ANONYMIZED = TensorSpec("ANONYMIZED", "UINT8", (-1, -1, 3))
BOXES = TensorSpec("BOXES", "FP32", (-1, 4))
SCORES = TensorSpec("SCORES", "FP32", (-1,))
BITS = TensorSpec("BITS", "INT64", (1,))

ANONYMIZE_FRAME = EnsembleSpec("anonymize_frame", (FRAME,), (ANONYMIZED, BOXES, SCORES, BITS))
ANALYZE_BITSTREAM = EnsembleSpec("analyze_bitstream", (PACKET,), (ANONYMIZED, BOXES, SCORES))
#: stateful: every request carries its camera's correlation ID (sequence_id), the first of a
#: sequence the START flag; the server keeps the camera's last latent between requests
ANALYZE_STREAM = EnsembleSpec("analyze_stream", (PACKET,), (ANONYMIZED, BOXES, SCORES))

#: ensemble name -> spec, in the order the repository generator writes them
ENSEMBLES: dict[str, EnsembleSpec] = {e.name: e for e in (ANONYMIZE_FRAME, ANALYZE_BITSTREAM, ANALYZE_STREAM)}
ENSEMBLE_NAMES: tuple[str, ...] = tuple(ENSEMBLES)
#: the model repository folder (relative to the working directory) that ``anoncodec export``
#: writes, ``anoncodec serve`` serves and a packets-mode camera reads its encoder from
DEFAULT_REPOSITORY = "model_repository"
#: camera mode -> the ensemble it calls. "packets" encodes on the camera (faces never leave
#: it); "frames" sends raw frames to the server.
#: "stream" sends keyframes and deltas (conditional replenishment) of one sequence per camera.
MODES: dict[str, EnsembleSpec] = {"packets": ANALYZE_BITSTREAM, "frames": ANONYMIZE_FRAME,
                                  "stream": ANALYZE_STREAM}
#: the modes whose requests belong to a sequence (Triton's sequence batcher)
SEQUENCE_MODES = frozenset({"stream"})
#: the ensembles a request can call on its own (no sequence ID): what load tests and
#: per-request benchmarks exercise
STATELESS_ENSEMBLE_NAMES: tuple[str, ...] = tuple(
    spec.name for mode, spec in MODES.items() if mode not in SEQUENCE_MODES)
DEFAULT_MODE = "packets"
#: largest frame (pixels per side) a model repository accepts unless exported with other
#: ``--max-height``/``--max-width``: 4K UHD, landscape
MAX_FRAME_HEIGHT = 2160
MAX_FRAME_WIDTH = 3840


def ensemble(name: str) -> EnsembleSpec:
    """The spec of ensemble ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return ENSEMBLES[name]
    except KeyError:
        raise ValueError(f"unknown ensemble {name!r}; expected one of {', '.join(ENSEMBLE_NAMES)}") from None


def ensemble_for_mode(mode: str) -> EnsembleSpec:
    """The ensemble a camera in ``mode`` calls; ``ValueError`` naming the modes otherwise."""
    try:
        return MODES[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}") from None
