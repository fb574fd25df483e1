"""anoncodec.evaluation.video_stream: method specs and ladders, one-call registration of a
new kind, the matched-recall table and the report, without real detectors."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from anoncodec.errors import ConfigError
from anoncodec.evaluation.video_stream import (
    MethodContext,
    MethodKind,
    MethodSpec,
    StreamOutput,
    build_coders,
    intra_coder,
    markdown_report,
    matched_recall,
    parse_specs,
)
from anoncodec.evaluation.video_stream import methods as vm
from tests.conftest import REPO


def keys(specs):
    return [s.key for s in specs]


def test_specs_ladders_and_sweeps():
    assert keys(parse_specs(["ours:mid", "blur-h264:28"])) == ["ours:mid", "blur-h264:28"]
    assert keys(parse_specs(["blur-av1"])) == [f"blur-av1:{c}" for c in (30, 38, 46, 54, 62)]
    swept = keys(parse_specs(["h264:30", "h265:28"], sweep=True))
    assert swept == [f"h264:{c}" for c in (23, 28, 30, 33, 38, 43)] + \
        [f"h265:{c}" for c in (23, 28, 33, 38, 43)]
    assert keys(parse_specs(["h264"], sweep=True, ladder=[40, 20])) == ["h264:20", "h264:40"]
    assert keys(parse_specs(["h264:28", "h264:33"], sweep=True, ladder=[28, 33])) == \
        ["h264:28", "h264:33"]
    assert parse_specs(["blur-h264:033"])[0].label == "CenterFace + blur + H.264 (x264) CRF 33"


@pytest.mark.parametrize("spec, match", [
    ("vp9:30", "unknown kind"), ("ours", "name the"), ("h264:x", "CRF"),
    ("h264:52", "0..51"), ("av1:0", "1..63"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_specs([spec])


def test_a_method_given_twice_is_an_error():
    with pytest.raises(ConfigError, match="more than once"):
        parse_specs(["h264:28", "h264:28"])
    with pytest.raises(ConfigError, match="0..51"):
        parse_specs(["h264"], ladder=[60])


def test_a_new_kind_is_one_registration(monkeypatch):
    monkeypatch.setattr(vm, "KINDS", dict(vm.KINDS))

    def build(value, context):
        def coder(frames, fps):
            return StreamOutput([f // 2 for f in frames], [int(value)] * len(frames), 7,
                                {"fps": fps})
        return coder

    vm.register_kind(MethodKind("halve", build, "BYTES", "ours", "halve ({value})", "test"))
    with pytest.raises(ConfigError, match="registered already"):
        vm.register_kind(MethodKind("halve", build, "BYTES", "ours", "x", "x"))
    specs = parse_specs(["halve:5"])
    assert specs == [MethodSpec("halve", "5")] and specs[0].role == "ours"
    out = build_coders(specs, MethodContext())["halve:5"]([np.full((2, 2, 3), 8, np.uint8)] * 3, 4.0)
    assert out.total_bytes == 22 and out.frames[0][0, 0, 0] == 4 and out.params == {"fps": 4.0}
    with pytest.raises(ConfigError, match="role"):
        MethodKind("bad", build, "X", "reference", "x", "x")


def test_intra_coder_codes_every_frame_alone():
    class Method:
        key, params = "toy", {"q": 1}

        def encode(self, frame):
            return bytes(int(frame[0, 0, 0]) + 1)

        def decode(self, data):
            return np.full((2, 2, 3), len(data), np.uint8)

    frames = [np.full((2, 2, 3), v, np.uint8) for v in (1, 5)]
    out = intra_coder(Method())(frames, 10.0)
    assert out.frame_bytes == [2, 6] and out.header_bytes == 0
    assert [int(f[0, 0, 0]) for f in out.frames] == [2, 6] and out.params == {"q": 1}


def summary(key, role, kbit_s, kept, original=10):
    kind, _, value = key.partition(":")
    share = kept / original if original else float("nan")
    return {"key": key, "kind": kind, "value": value, "label": key, "role": role,
            "kbit_s": kbit_s, "psnr_out": 30.0,
            "faces": {"frames": 4, "with_face": 1, "share": 0.25, "longest": 1,
                      "longest_s": 0.1, "runs": 1},
            "persons": {"original": original, "kept": kept, "share": share},
            "flicker": {"decoded": 1.5, "original": 1.0, "excess": 0.5,
                        "static_share": 0.8, "threshold": 4.0}}


SUMMARIES = [
    summary("original", "original", None, 10),
    summary("ours:mid", "ours", 50.0, 8),
    summary("blur-h264:23", "baseline", 400.0, 9),
    summary("blur-h264:33", "baseline", 100.0, 8),
    summary("blur-h264:43", "baseline", 20.0, 4),
    summary("blur-av1:62", "baseline", 10.0, 2),
]


def test_matched_recall_picks_the_cheapest_point_per_baseline():
    rows = {m["baseline"]: m for m in matched_recall(SUMMARIES)}
    assert rows["blur-h264"]["key"] == "blur-h264:33"
    assert rows["blur-h264"]["ratio"] == pytest.approx(2.0)
    assert rows["blur-av1"]["key"] is None and "extend the ladder" in rows["blur-av1"]["reason"]


def test_markdown_report_has_both_tables():
    record = {"command": "python benchmarks/video_stream.py", "commit": "abc", "device": "cpu",
              "wall_s": 3.0, "frames": 4, "fps": 10.0, "static_threshold": 4.0,
              "person_conf": 0.25, "clip": {"source": "video", "video": "v.avi",
                                            "size": [48, 64], "ground_truth": "CenterFace"},
              "summaries": SUMMARIES, "matched_recall": matched_recall(SUMMARIES)}
    md = markdown_report(record)
    assert "| `ours:mid` | 50.0 |" in md and "## At matched person recall" in md
    assert "2.00x" in md and "none" in md


def test_benchmark_help_and_bad_method(capsys, tmp_path):
    path = REPO / "benchmarks" / "video_stream.py"
    spec = importlib.util.spec_from_file_location("video_stream_script", path)
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as done:
        script.main(["--help"])
    assert done.value.code == 0 and "--crf-ladder" in capsys.readouterr().out
    assert script.main(["--method", "vp9:3", "--out", str(tmp_path)]) == 2
    assert "unknown kind" in capsys.readouterr().err


def test_ours_stream_codes_the_clip_as_one_sequence(tmp_path):
    """The registered sequence kind: a real tiny checkpoint, a real guard, version-2 packets."""
    from anoncodec.codec import save_checkpoint
    from tests.conftest import tiny_codec

    save_checkpoint(tmp_path / "tiny.pt", tiny_codec("factorized"))
    [spec] = parse_specs([f"ours-stream:{tmp_path / 'tiny.pt'}"])
    assert spec.role == "ours"
    coder = build_coders([spec], MethodContext())[spec.key]
    base = np.full((64, 96, 3), 120, np.uint8)
    frames = [base.copy() for _ in range(4)]
    for i, f in enumerate(frames):
        f[8:24, 8 + 16 * i: 24 + 16 * i] = 255
    out = coder(frames, 10.0)
    assert len(out.frames) == 4 and out.frames[0].shape == frames[0].shape
    assert max(out.frame_bytes[1:]) < out.frame_bytes[0]  # deltas after the keyframe


def test_stream_specs_take_a_threshold():
    assert keys(parse_specs(["ours-stream:mid@0.05", "ours-stream-noguard:mid@0"])) == \
        ["ours-stream:mid@0.05", "ours-stream-noguard:mid@0"]
    for bad in ("ours-stream:mid@x", "ours-stream:mid@-1", "ours-stream:@0.1"):
        with pytest.raises(ConfigError, match="THRESHOLD"):
            parse_specs([bad])
    from anoncodec.frames import read_frames
    from tests.conftest import SAMPLES

    # the demo checkpoint: an untrained codec's latent hardly changes between frames
    frames = [f[200:328, 200:392] for f in read_frames(SAMPLES / "vtest_excerpt.avi", max_frames=4)]
    sizes = {}
    for threshold in ("0", "1000"):
        [spec] = parse_specs([f"ours-stream-noguard:demo@{threshold}"])
        sizes[threshold] = sum(build_coders([spec], MethodContext())[spec.key](frames, 10.0).frame_bytes[1:])
    assert sizes["1000"] < sizes["0"]  # a high threshold sends no cell again


def test_report_compares_each_stream_with_intra_coding():
    rows = [*SUMMARIES, summary("ours-stream:mid@0.01", "ours", 10.0, 7),
            summary("ours-stream-noguard:mid", "ours", 5.0, 9)]
    record = {"command": "python benchmarks/video_stream.py", "commit": "abc", "device": "cpu",
              "wall_s": 3.0, "frames": 4, "fps": 10.0, "static_threshold": 4.0,
              "person_conf": 0.25, "clip": {"source": "video", "video": "v.avi",
                                            "size": [48, 64], "ground_truth": "CenterFace"},
              "summaries": rows, "matched_recall": []}
    md = markdown_report(record)
    assert "## Against intra-only coding" in md
    assert "| `ours-stream:mid@0.01` | `ours:mid` | 0.20x | 0.00 | 7 vs 8 |" in md
    assert "ours-stream-noguard:mid` | `ours" not in md  # no unguarded intra row to compare with
