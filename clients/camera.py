"""Camera client: stream a video, image folder, webcam or RTSP URL to the Triton ensembles.

A thin script over :mod:`anoncodec.edge.client` (the same as ``anoncodec camera``)::

    python clients/camera.py --source data/samples/vtest_excerpt.avi --mode packets \\
        --export-dir model_repository --detections detections.jsonl --output-video out.avi

Run ``python clients/camera.py --help`` for every option.
"""

from __future__ import annotations

import sys

from anoncodec.cli.main import main as anoncodec_main


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) as ``anoncodec camera`` arguments and run."""
    return anoncodec_main(["camera", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
