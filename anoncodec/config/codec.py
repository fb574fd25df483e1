"""The learned codec's architecture (:class:`CodecConfig`).

Stdlib only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from anoncodec.config.serializable import _check, _Serializable

__all__ = ["ARCHITECTURES", "CodecConfig"]

ARCHITECTURES = ("factorized", "hyperprior")


#: the CodecConfig fields of the learned head gate
_GATE_FIELDS = ("gate_channels", "gate_threshold", "gate_margin")


@dataclass(frozen=True)
class CodecConfig(_Serializable):
    """Architecture of the learned codec.

    Args:
        architecture: registry key, ``"factorized"`` (Ballé 2018 fully factorized prior,
            the paper's model) or ``"hyperprior"`` (scale hyperprior).
        N: channels of the hidden layers.
        M: channels of the latent ``y``.
        extra_blocks: stride-2 conv+GDN blocks added to the 4 of Ballé's transforms (0-2);
            each doubles the downsampling factor and the receptive field.
        gate_channels: hidden channels of the learned head gate (factorized prior only;
            0: no gate). The gate predicts from ``y`` which latent cells show a head and the
            encoder writes the entropy model's medians there (:mod:`anoncodec.codec.gate`).
        gate_threshold: probability above which a cell is erased.
        gate_margin: cells erased around every cell the gate fires on.
    """

    architecture: str = "factorized"
    N: int = 128
    M: int = 192
    extra_blocks: int = 0
    gate_channels: int = 0
    gate_threshold: float = 0.5
    gate_margin: int = 1

    def __post_init__(self) -> None:
        _check(self.architecture in ARCHITECTURES,
               f"codec.architecture={self.architecture!r}; expected one of {ARCHITECTURES}")
        _check(isinstance(self.N, int) and 1 <= self.N <= 1024, f"codec.N={self.N!r}; expected 1..1024")
        _check(isinstance(self.M, int) and 1 <= self.M <= 1024, f"codec.M={self.M!r}; expected 1..1024")
        _check(self.extra_blocks in (0, 1, 2), f"codec.extra_blocks={self.extra_blocks!r}; expected 0, 1 or 2")
        _check(isinstance(self.gate_channels, int) and 0 <= self.gate_channels <= 512,
               f"codec.gate_channels={self.gate_channels!r}; expected 0 (no gate) .. 512")
        _check(not (self.gate_channels and self.architecture != "factorized"),
               "codec.gate_channels > 0 needs architecture 'factorized'")
        _check(isinstance(self.gate_threshold, (int, float)) and 0.0 < self.gate_threshold < 1.0,
               f"codec.gate_threshold={self.gate_threshold!r}; expected a probability in (0, 1)")
        _check(isinstance(self.gate_margin, int) and 0 <= self.gate_margin <= 4,
               f"codec.gate_margin={self.gate_margin!r}; expected 0..4 latent cells")

    def to_dict(self) -> dict[str, Any]:
        """As the other configs; without a gate the gate keys are left out, so codecs
        trained before the gate existed keep their serialized config and model id."""
        data = super().to_dict()
        if not self.gate_channels:
            for key in _GATE_FIELDS:
                data.pop(key)
        return data

    def without_gate(self) -> CodecConfig:
        """The same transforms without the gate (what a gated codec is initialized from)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in _GATE_FIELDS}
        return dataclasses.replace(self, **defaults)


    @property
    def downsampling(self) -> int:
        """Factor by which the latent is smaller than the (padded) image."""
        return 2 ** (4 + self.extra_blocks)
