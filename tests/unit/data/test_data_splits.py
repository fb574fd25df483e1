"""Train/validation splits: disjoint, group-intact, video tails, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from anoncodec.data import AnnotatedImage, split_items


def _item(i: int, group: str, order: int = 0, sequence: str = "") -> AnnotatedImage:
    return AnnotatedImage(
        f"id{i}",
        f"/x/{i}.jpg",
        np.zeros((0, 4)),
        np.zeros((0, 4)),
        group,
        order,
        sequence,
    )


def _photos(n_groups: int, per_group: int = 2) -> list[AnnotatedImage]:
    return [
        _item(g * per_group + k, f"g{g}")
        for g in range(n_groups)
        for k in range(per_group)
    ]


def _video(
    frames: int, block: int, name: str = "v.avi", start: int = 0
) -> list[AnnotatedImage]:
    return [
        _item(start + f, f"{name}:t{f // block:05d}", f, name) for f in range(frames)
    ]


def _ids(items):
    return [it.id for it in items]


def test_photos_disjoint_complete_group_intact_deterministic():
    items = _photos(20)
    train, val = split_items(items, 0.25, seed=0)
    assert not set(_ids(train)) & set(_ids(val))
    assert sorted(_ids(train) + _ids(val)) == sorted(_ids(items))
    assert len(val) == 10  # 25 % of 40 items, whole groups of 2
    assert not {it.group for it in train} & {it.group for it in val}
    assert (_ids(train), _ids(val)) == tuple(
        map(_ids, split_items(items, 0.25, seed=0))
    )
    assert _ids(train) == [
        i for i in _ids(items) if i in set(_ids(train))
    ]  # input order
    other_seeds = {
        tuple(_ids(split_items(items, 0.25, seed=s)[1])) for s in range(1, 6)
    }
    assert len(other_seeds | {tuple(_ids(val))}) > 1


def test_photos_group_rank_is_independent_of_other_groups():
    """Validation is a prefix of one per-group ranking, whatever else is in the list, so
    the val groups of a subset and of a superset are nested."""
    small = {it.group for it in split_items(_photos(30), 0.2, seed=3)[1]}
    large = {it.group for it in split_items(_photos(60), 0.4, seed=3)[1]}
    large &= {f"g{g}" for g in range(30)}
    assert small <= large or large <= small


def test_small_fractions_and_edge_cases():
    train, val = split_items(_photos(2, per_group=50), 0.01)
    assert len(val) == 50 and len(train) == 50  # at least one group, never all
    train, val = split_items(_photos(5), 0.0)
    assert val == [] and len(train) == 10
    train, val = split_items(_photos(1, per_group=5), 0.5)
    assert val == [] and len(train) == 5  # one group cannot be split
    with pytest.raises(ValueError):
        split_items(_photos(3), 1.0)


def test_video_tail_with_gap():
    items = _video(50, block=10)
    train, val = split_items(items, 0.2, gap=4)
    assert [it.order for it in val] == list(range(40, 50))
    assert [it.order for it in train] == list(range(37))  # frames 37..39 dropped
    assert max(it.order for it in train) <= min(it.order for it in val) - 4
    assert {it.group for it in val} == {"v.avi:t00004"}
    # video splits ignore the seed
    assert _ids(split_items(items, 0.2, seed=7)[1]) == _ids(val)


def test_video_tail_takes_whole_groups_until_fraction():
    train, val = split_items(_video(50, block=10), 0.25, gap=2)
    assert [it.order for it in val] == list(range(30, 50))
    assert [it.order for it in train] == list(range(29))


def test_mixed_sources_are_split_independently():
    items = (
        _photos(10)
        + _video(40, 10, "a.avi", start=100)
        + _video(20, 5, "b.avi", start=200)
    )
    train, val = split_items(items, 0.25, gap=3)
    assert not set(_ids(train)) & set(_ids(val))
    for name, first_val in (("a.avi", 30), ("b.avi", 15)):
        v = [it.order for it in val if it.sequence == name]
        t = [it.order for it in train if it.sequence == name]
        assert v == list(range(first_val, first_val + len(v))) and min(v) == first_val
        assert max(t) == first_val - 3
    assert sum(1 for it in val if not it.sequence) == 6  # 25 % of 20 photos -> 3 groups


def test_strided_video_keeps_distant_frames_and_one_train_frame():
    strided = [
        _item(f, f"v:t{f // 100}", f, "v") for f in range(0, 500, 50)
    ]  # 10 frames
    train, val = split_items(strided, 0.2, gap=10)
    assert [it.order for it in val] == [400, 450]
    assert [it.order for it in train] == [0, 50, 100, 150, 200, 250, 300, 350]
    two = [_item(0, "a", 0, "v"), _item(1, "b", 1, "v")]
    train, val = split_items(two, 0.5, gap=10)
    assert _ids(train) == ["id0"] and _ids(val) == ["id1"]


def test_group_mixing_sequences_is_an_error():
    items = [_item(0, "g", 0, "a.avi"), _item(1, "g", 1, "b.avi")]
    with pytest.raises(ValueError, match="mixes"):
        split_items(items, 0.5)
