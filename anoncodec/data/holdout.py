"""Which identities and scenes of the corpora are train, validation or test.

Stdlib only (plus :mod:`anoncodec.data.corpus` and :mod:`anoncodec.errors`). The unit of
the split is the *identity* and the *scene* together: every file of the corpora has both
(:class:`~anoncodec.data.corpus.CorpusFile`), both must fall in the same split, and a
composite only ever mixes parts of one split. So no person and no background the model
trained on is ever used to judge it.

Default assignment (:class:`HoldoutConfig`):

- openpeople: ``P008`` validation, ``P009`` and ``P010`` test, the other 7 train;
- fake-avatars: face ``N`` is validation when ``N % 10 == 8`` and test when ``== 9``;
- sample media: ``vtest`` and ``bus`` train, ``zidane`` validation, ``messi5`` and
  ``basketball1`` test (the photos the earlier privacy attack was judged on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from anoncodec.data.corpus import CorpusFile
from anoncodec.errors import ConfigError, DatasetError

__all__ = ["SPLITS", "HoldoutConfig", "split_of", "split_files", "check_disjoint"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class HoldoutConfig:
    """The held-out identities and scenes; everything else trains.

    Args:
        val_identities / test_identities: identities (``P008``, ``sample-zidane``, ...).
        avatar_modulus: fake-avatars face ``N`` goes to validation when
            ``N % avatar_modulus == avatar_val`` and to test when ``== avatar_test``.
    """

    val_identities: tuple[str, ...] = ("P008", "sample-zidane")
    test_identities: tuple[str, ...] = ("P009", "P010", "sample-messi5", "sample-basketball1")
    avatar_modulus: int = 10
    avatar_val: int = 8
    avatar_test: int = 9

    def __post_init__(self) -> None:
        both = set(self.val_identities) & set(self.test_identities)
        if both:
            raise ConfigError(f"identities {sorted(both)} are both validation and test")
        if not (self.avatar_modulus >= 3 and 0 <= self.avatar_val < self.avatar_modulus
                and 0 <= self.avatar_test < self.avatar_modulus and self.avatar_val != self.avatar_test):
            raise ConfigError(f"avatar split {self.avatar_val}/{self.avatar_test} mod {self.avatar_modulus}; "
                              "expected two different residues of a modulus >= 3")


def split_of(file: CorpusFile, config: HoldoutConfig = HoldoutConfig()) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for one corpus file (by its identity)."""
    ident = file.identity
    if file.corpus == "fake-avatars":
        index = int(ident.rsplit("-", 1)[-1])
        residue = index % config.avatar_modulus
        return "val" if residue == config.avatar_val else "test" if residue == config.avatar_test else "train"
    if ident in config.val_identities:
        return "val"
    if ident in config.test_identities:
        return "test"
    return "train"


def split_files(files: Iterable[CorpusFile], config: HoldoutConfig = HoldoutConfig()) -> dict[str, list[CorpusFile]]:
    """Files per split; checks that no identity or scene lands in two splits."""
    out: dict[str, list[CorpusFile]] = {s: [] for s in SPLITS}
    for f in files:
        out[split_of(f, config)].append(f)
    check_disjoint({s: [(f.identity, f.scene) for f in fs] for s, fs in out.items()})
    return out


def check_disjoint(keys: dict[str, Iterable[tuple[str, str]]]) -> None:
    """Raise :class:`DatasetError` when an identity or a scene appears in two splits.

    Args:
        keys: per split, the ``(identity, scene)`` pairs of its items (a composite lists
            one pair per pasted part and its background).
    """
    seen_id: dict[str, str] = {}
    seen_scene: dict[str, str] = {}
    for split, pairs in keys.items():
        for identity, scene in pairs:
            for table, key, what in ((seen_id, identity, "identity"), (seen_scene, scene, "scene")):
                if not key:
                    continue
                other = table.setdefault(key, split)
                if other != split:
                    raise DatasetError(f"{what} {key!r} is in both {other} and {split}")
