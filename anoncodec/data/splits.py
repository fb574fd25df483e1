"""Deterministic train/validation splits that never leak between the two sides.

May import stdlib and :mod:`anoncodec.data.sample`.

Rules (``split_items``):

- the unit is the ``group``: all items of a group land in the same split;
- photos (``sequence == ""``): groups are ranked by a hash of ``(seed, group)`` and taken
  into validation in that order until ``val_fraction`` of the items is reached. The rank of a
  group does not depend on the other groups, so adding images to a dataset moves no
  existing image across the split;
- videos (items sharing a non-empty ``sequence``): validation is the *tail* of each
  sequence's time line (whole groups, latest first), and train frames less than ``gap``
  source frames (``order`` units) before the first validation frame are dropped from both
  splits, so near-identical neighbouring frames never straddle the split (with a large
  ``frame_stride`` the kept frames are already far apart and nothing needs dropping);
- with ``val_fraction > 0`` and at least 2 groups (photos, or within a sequence) validation
  gets at least one group, and train always keeps at least one.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import defaultdict
from collections.abc import Sequence

from anoncodec.data.sample import AnnotatedImage

__all__ = ["split_items"]

logger = logging.getLogger(__name__)


def _rank(seed: int, group: str) -> str:
    return hashlib.sha1(f"{seed}\x00{group}".encode()).hexdigest()


def _take_val_groups(
    groups: list[str], sizes: dict[str, int], val_fraction: float
) -> set[str]:
    """Take groups from the front of ``groups`` until ``val_fraction`` of the items is reached."""
    if val_fraction <= 0 or len(groups) < 2:
        return set()
    target = val_fraction * sum(sizes[g] for g in groups)
    chosen: set[str] = set()
    count = 0
    for group in groups[:-1]:  # never all groups: train keeps at least one
        if chosen and count >= target:
            break
        chosen.add(group)
        count += sizes[group]
    return chosen


def split_items(
    items: Sequence[AnnotatedImage],
    val_fraction: float,
    seed: int = 0,
    gap: int = 10,
) -> tuple[list[AnnotatedImage], list[AnnotatedImage]]:
    """Split items into train and validation (see the module docstring for the rules).

    Args:
        items: annotated images, typically of one source.
        val_fraction: share of items for validation, in [0, 1).
        seed: changes which photo groups go to validation (videos always use the tail).
        gap: minimum distance, in source frames, between the last train frame and the
            first validation frame of a video; closer train frames are dropped (at least
            one train frame is always kept).

    Returns:
        ``(train, val)``, each in the input order; disjoint; together they hold every item
        except the dropped gap frames.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction!r}; expected in [0, 1)")
    sizes: dict[str, int] = defaultdict(int)
    group_sequence: dict[str, str] = {}
    for item in items:
        sizes[item.group] += 1
        previous = group_sequence.setdefault(item.group, item.sequence)
        if previous != item.sequence:
            raise ValueError(
                f"group {item.group!r} mixes sequences {previous!r} and {item.sequence!r}"
            )

    val_groups: set[str] = set()
    photo_groups = sorted(
        (g for g, s in group_sequence.items() if not s), key=lambda g: _rank(seed, g)
    )
    val_groups |= _take_val_groups(photo_groups, sizes, val_fraction)

    dropped: set[int] = set()  # id() of gap items
    by_sequence: dict[str, list[AnnotatedImage]] = defaultdict(list)
    for item in items:
        if item.sequence:
            by_sequence[item.sequence].append(item)
    for sequence, seq_items in sorted(by_sequence.items()):
        first_order: dict[str, int] = {}
        for item in seq_items:
            first_order[item.group] = min(
                first_order.get(item.group, math.inf), item.order
            )
        # latest group first
        groups = sorted(first_order, key=lambda g: (first_order[g], g), reverse=True)
        seq_val = _take_val_groups(groups, sizes, val_fraction)
        if not seq_val:
            continue
        val_groups |= seq_val
        val_start = min(it.order for it in seq_items if it.group in seq_val)
        train_side = sorted(
            (it for it in seq_items if it.group not in seq_val), key=lambda it: it.order
        )
        close = [it for it in train_side[1:] if it.order > val_start - gap]  # keep >= 1
        dropped.update(id(it) for it in close)
        logger.debug(
            "sequence %s: validation from frame %d, %d gap frames dropped",
            sequence,
            val_start,
            len(close),
        )

    train = [it for it in items if it.group not in val_groups and id(it) not in dropped]
    val = [it for it in items if it.group in val_groups]
    logger.info(
        "split: %d train, %d val, %d dropped (val_fraction=%s)",
        len(train),
        len(val),
        len(dropped),
        val_fraction,
    )
    return train, val
