"""Report writing and the computed verdict, on constructed rows with known answers."""

import json
import math

from anoncodec.evaluation.benchmark import MethodSummary
from anoncodec.evaluation.report import compare, write_report

SETTINGS = {"person_conf": 0.25, "person_iou": 0.45, "person_classes": [0, 1], "person_input": 640,
            "mtcnn_threshold": 0.0, "centerface_threshold": 0.4, "dlib_upsample": 1, "match_distance": 0.6,
            "timing_repeats": 5, "timing_warmup": 1}


def row(key, family, bpp, person_ap, face_ap, cf_recall, leakage, psnr=30.0):
    faces = 4
    return MethodSummary(
        key=key, family=family, label=key, params={}, images=2, bpp=bpp, psnr_out=psnr, msssim_out=0.9,
        person={"ap50": person_ap, "recall50": person_ap, "num_gt": 10, "num_det": 10},
        face_mtcnn={"ap50": face_ap, "recall50": face_ap, "num_gt": 4, "num_det": 4},
        face_centerface={"ap50": cf_recall, "recall50": cf_recall, "num_gt": 4, "num_det": 4},
        found_again={"mtcnn": min(1.0, face_ap / 0.8), "centerface": min(1.0, cf_recall / 0.9)},
        leakage={"faces": faces, "matched": round(leakage * faces), "leakage": leakage, "mean_distance": 0.5,
                 "threshold": 0.6, "distances": []},
        encode_ms=10.0, decode_ms=5.0,
        per_image=[{"image": "a", "bytes": 1000, "bpp": bpp}, {"image": "b", "bytes": 3000, "bpp": bpp}])


ORIGINAL = row("original", "original", 12.0, 1.0, 0.8, 0.9, 1.0, psnr=math.inf)
OURS = row("ours", "ours", 0.3, 0.6, 0.0, 0.1, 0.0, psnr=21.0)
JPEG = row("jpeg-q10", "jpeg", 0.31, 0.8, 0.8, 0.9, 1.0)
FILL_GOOD = row("fill-q10", "fill", 0.32, 0.7, 0.0, 0.0, 0.0)
FILL_FAT = row("fill-q75", "fill", 1.5, 0.95, 0.0, 0.0, 0.0)
BLUR_LEAKY = row("blur-q10", "blur", 0.29, 0.7, 0.0, 0.2, 0.0)


def test_compare_picks_nearest_rate_and_finds_dominating_baselines():
    cmp = compare(OURS, [JPEG, FILL_GOOD, FILL_FAT, BLUR_LEAKY])
    assert cmp["versus"]["fill"]["baseline"] == "fill-q10"  # 0.32 bpp is nearer 0.3 than 1.5
    assert cmp["dominated_by"] == ["fill-q10"]  # as cheap, more useful, at least as private
    assert cmp["versus"]["jpeg"]["privacy_verdict"] == "ours better"
    assert cmp["versus"]["fill"]["privacy_verdict"] == "ours worse"  # CenterFace recall 0 < 0.1
    assert cmp["versus"]["blur"]["privacy_verdict"] == "ours better"  # more CenterFace hits, rest tied
    assert cmp["versus"]["jpeg"]["utility_verdict"] == "ours worse"
    assert compare(OURS, [JPEG, FILL_FAT, BLUR_LEAKY])["dominated_by"] == []  # too many bits / not private


def test_report_files_and_honest_verdict(tmp_path):
    written = write_report(tmp_path, [ORIGINAL, OURS, JPEG, FILL_GOOD, FILL_FAT], command="anoncodec evaluate X",
                           data=[{"spec": "x", "images": 2, "ground_truth": "detections", "detected_ground_truth":
                                  True}],
                           settings=SETTINGS, environment={"device": "cpu", "cores": 2, "commit": "abc"},
                           notes="Held-in images.")
    report = (tmp_path / "report.md").read_text()
    for name in ("person_ap_vs_bpp.png", "leakage_vs_bpp.png", "face_ap_vs_bpp.png", "psnr_out_vs_bpp.png"):
        assert (tmp_path / name).stat().st_size > 5000 and f"]({name})" in report
    assert "anoncodec evaluate X" in report and "## Notes" in report and "Held-in images." in report
    assert "**Ours loses on utility** (person AP) to jpeg-q10, fill-q10" in report
    assert "**Privacy**: ours is more private than jpeg-q10" in report
    assert "**Privacy**: ours is **less private** than fill-q10" in report
    assert "**Dominated by fill-q10**" in report
    assert "| original | 12.000 | 2000 | inf |" in report
    assert "1.00 (4/4)" in report and "0.00 (0/4)" in report
    def reject(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=reject)
    assert metrics["methods"][0]["psnr_out"] == "inf"
    assert [m["key"] for m in metrics["methods"]] == ["original", "ours", "jpeg-q10", "fill-q10", "fill-q75"]
    assert metrics["comparison"][0]["dominated_by"] == ["fill-q10"]
    assert set(written) >= {"report", "metrics"}


def test_report_without_learned_codec_says_so(tmp_path):
    write_report(tmp_path, [ORIGINAL, JPEG], command="c", data=[], settings=SETTINGS,
                 environment={"device": "cpu"})
    assert "nothing to compare" in (tmp_path / "report.md").read_text()
