import numpy as np
import pytest

from anoncodec.cli.evaluate import DEFAULT_METHODS
from anoncodec.codec import save_checkpoint
from anoncodec.errors import ConfigError
from anoncodec.evaluation import baselines
from anoncodec.evaluation.methods import (
    DEFAULT_METHOD_SPECS,
    anonymizer_method,
    build_methods,
    callable_method,
    codec_method,
    parse_method_specs,
)
from anoncodec.packet import unpack
from tests.conftest import tiny_codec


def test_parse_specs():
    assert parse_method_specs(["original", "jpeg:10,40", "ours:a.pt,b.pt"]) == [
        ("original", []), ("jpeg", ["10", "40"]), ("ours", ["a.pt", "b.pt"])]
    assert parse_method_specs(["jpeg:10 webp:20"]) == [("jpeg", ["10"]), ("webp", ["20"])]
    for bad in (["png:10"], ["jpeg"], ["jpeg:10", "jpeg:20"], ["original:5"]):
        with pytest.raises(ConfigError):
            parse_method_specs(bad)


def test_cli_defaults_equal_library_defaults():
    assert tuple(DEFAULT_METHODS) == DEFAULT_METHOD_SPECS


def test_build_methods_original_first_and_quality_checks():
    methods = build_methods(["jpeg:10,40", "webp:30"])
    keys = [m.key for m in methods]
    assert keys[0] == "original" and "jpeg-q10" in keys and "jpeg-q40" in keys
    assert ("webp-q30" in keys) == baselines.pillow_supports("webp")
    for bad in (["jpeg:0"], ["jpeg:abc"], ["ours"]):
        with pytest.raises(ConfigError):
            build_methods(bad)


def test_codec_method_sends_a_real_packet(tmp_path):
    model = tiny_codec("factorized")
    save_checkpoint(tmp_path / "tiny.pt", model)
    method = codec_method(tmp_path / "tiny.pt")
    frame = np.random.default_rng(0).integers(0, 256, size=(40, 52, 3), dtype=np.uint8)
    data = method.encode(frame)
    packet = unpack(data)  # the complete ANCP packet, header and CRC included
    assert (packet.height, packet.width) == (40, 52) and packet.model_id == model.model_id()
    out = method.decode(data)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert method.family == "ours" and method.params["model_id"] == model.model_id().hex()
    [built] = build_methods(["ours"], default_checkpoint=tmp_path / "tiny.pt")[1:]
    assert built.key == method.key and built.cache_id() == method.cache_id()


def test_callable_method_wraps_any_function():
    frame = np.zeros((8, 8, 3), np.uint8)
    method = callable_method("invert", lambda f: (255 - f, b"xyz"), params={"v": 1})
    data = method.encode(frame)
    assert data == b"xyz" and (method.decode(data) == 255).all() and not method.separable
    with pytest.raises(ValueError):
        method.decode(b"other")
    assert method.cache_id() != callable_method("invert", lambda f: (f, b""), params={"v": 2}).cache_id()


def test_anonymizer_fills_the_faces_centerface_finds(detectors, messi):
    method = anonymizer_method("fill", 90, detectors.centerface)
    out = method.decode(method.encode(messi))
    faces = detectors.centerface.detect(messi, 0.2)
    assert len(faces) >= 1
    x1, y1, x2, y2 = faces[0, :4].astype(int)
    assert out[y1 + 2:y2 - 2, x1 + 2:x2 - 2].max() < 40  # black, up to JPEG ringing
    assert len(detectors.centerface.detect(out, 0.4)) < len(detectors.centerface.detect(messi, 0.4)) or \
        len(faces) == 0
    with pytest.raises(ConfigError):
        anonymizer_method("swirl", 90, detectors.centerface)


def test_guard_family_erases_the_face_the_plain_codec_keeps_encoding():
    """``guard``: same checkpoint, heads CenterFace finds erased on the camera side."""
    import numpy as np
    from PIL import Image

    from anoncodec.evaluation.methods import OURS_FAMILIES, build_methods
    from anoncodec.weights import resolve_checkpoint
    from tests.conftest import SAMPLES

    methods = {m.family: m for m in build_methods(["ours", "guard"], resolve_checkpoint(None))}
    assert set(OURS_FAMILIES) <= set(methods)
    ours, guard = methods["ours"], methods["guard"]
    assert guard.key.startswith("guard-") and guard.params["guard"]["margin"] == 1
    assert guard.cache_id() != ours.cache_id()
    frame = np.asarray(Image.open(SAMPLES / "messi5.jpg").convert("RGB"))
    plain, guarded = ours.encode(frame), guard.encode(frame)
    assert len(guarded) < len(plain)  # the erased head costs almost nothing
    assert guard.decode(guarded).shape == frame.shape


def test_stream_method_codes_a_clip_as_one_sequence_decoding_like_intra_at_threshold_0(tmp_path):
    from anoncodec.evaluation.stream_method import stream_method
    from anoncodec.replenish import ReplenishConfig

    save_checkpoint(tmp_path / "tiny.pt", tiny_codec("factorized"))
    intra = codec_method(tmp_path / "tiny.pt")
    stream = stream_method(tmp_path / "tiny.pt", config=ReplenishConfig(keyframe_interval=10, threshold=0.0))
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    sizes = []
    for i in range(4):
        frame = base.copy()
        frame[8:24, 8 + 16 * i: 24 + 16 * i] = 255  # one moving square on a static scene
        data = stream.encode(frame)
        packet = unpack(data)
        assert packet.version == 2 and packet.sequence.frame_index == i
        assert np.array_equal(stream.decode(data), intra.decode(intra.encode(frame)))
        sizes.append(len(data))
    assert max(sizes[1:]) < sizes[0] and stream.family == "stream"
