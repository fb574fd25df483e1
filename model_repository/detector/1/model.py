"""Triton python model of the ``detector`` stage: YOLOv8 person detector (ONNX) with ONNX Runtime,
or, when its config says ``detector_kind: ssd``, SSD-MobileNetV2 (TF graph) with OpenCV DNN.

A thin adapter: the logic lives in anoncodec.serving (runtime.py, stages.py).
"""

import os
import sys

# The python stub runs in isolated mode and ignores PYTHONPATH; `anoncodec serve` exports
# ANONCODEC_SYS_PATH (the venv's site-packages and the source tree) for this.
for _folder in reversed(os.environ.get("ANONCODEC_SYS_PATH", "").split(os.pathsep)):
    if _folder and _folder not in sys.path:
        sys.path.insert(0, _folder)

from anoncodec.serving.python_model import stage_model  # noqa: E402

TritonPythonModel = stage_model("detector")
