"""Locust gRPC users for both Triton ensembles, driven by a step load that finds capacity.

    .venv/bin/locust -f load_tests/locustfile.py --headless --host 127.0.0.1:8001 \
        --export-dir model_repository --max-users 4 --step-seconds 60 --slo-ms 2500 \
        --csv out/locust --html out/locust.html --requests-csv out/requests.csv
    (or, simpler: .venv/bin/python load_tests/run.py --help)

Users (closed loop: each sends its next request as soon as the previous one returned):

- ``AnonymizeFrameUser``: a raw uint8 ``FRAME`` to ``anonymize_frame`` (cameras that cannot encode);
- ``AnalyzeBitstreamUser``: a ``PACKET`` encoded beforehand with the camera's ONNX Runtime
  encoder (``--export-dir``: the repository the server serves, or the camera export) to
  ``analyze_bitstream``.

Frames (``--video``, first ``--frames`` frames) and packets are prepared once per process,
before any user starts, and every call is reported through Locust's ``request`` event
(request type ``grpc``, name = ensemble, response length = payload bytes), so Locust's
CSV/HTML reports show both ensembles. ``StepLoadShape`` follows
:class:`anoncodec.qa.loadtest.StepLoad` (``--start-users``, ``--step-users``,
``--max-users``, ``--step-seconds``) and, with ``--stop-on-breach``, stops after the first
step whose p95 exceeds ``--slo-ms`` or that had a failure. ``--requests-csv`` keeps every
request for the per-step capacity summary (``load_tests/run.py`` writes it).

This file imports only what camera clients import (``anoncodec.edge``, ``tritonclient``)
plus Locust and :mod:`anoncodec.qa.loadtest`.
"""

# gRPC must cooperate with gevent's event loop before any channel exists.
from grpc.experimental import gevent as grpc_gevent

grpc_gevent.init_gevent()

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tritonclient.grpc as grpcclient  # noqa: E402
from locust import LoadTestShape, User, constant, events, task  # noqa: E402
from locust.exception import StopUser  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from anoncodec.contract import ANALYZE_BITSTREAM, ANONYMIZE_FRAME  # noqa: E402
from anoncodec.edge.request import payload_size, request_inputs, requested_outputs  # noqa: E402
from anoncodec.qa.loadtest import (  # noqa: E402
    DEFAULT_SLO_MS,
    RequestRecord,
    StepLoad,
    add_step_load_arguments,
    step_breached,
    step_load_from,
    write_requests_csv,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO / "data" / "samples" / "vtest_excerpt.avi"


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    parser.add_argument("--video", default=str(DEFAULT_VIDEO), include_in_web_ui=False,
                       help="clip whose first --frames frames are sent (round robin)")
    parser.add_argument("--frames", type=int, default=8, include_in_web_ui=False,
                       help="distinct frames (and packets) prepared before the test")
    parser.add_argument("--export-dir", default=str(REPO / "model_repository"), include_in_web_ui=False,
                       help="camera encoder for the packets: the model repository the server serves "
                       "(encoder/1/model.onnx + quantize/1/tables.npz) or an encoder.onnx + tables.npz folder")
    parser.add_argument("--request-timeout", type=float, default=60.0, include_in_web_ui=False,
                       help="gRPC deadline of one request, seconds")
    add_step_load_arguments(parser.add_argument)
    parser.add_argument("--slo-ms", type=float, default=DEFAULT_SLO_MS, help="p95 latency objective, ms")
    parser.add_argument("--stop-on-breach", action="store_true", default=False,
                       help="stop after the first step over the SLO or with a failure")
    parser.add_argument("--requests-csv", default="", include_in_web_ui=False,
                       help="write every request (start_s,name,latency_ms,ok,bytes,error) here")
    parser.add_argument("--run-json", default="", include_in_web_ui=False,
                       help="write the step load, SLO, stop time and reason here")


class _Run:
    """Process-wide state: prepared inputs, the request log and the load test's clock."""

    def __init__(self) -> None:
        self.inputs: dict[str, list] = {}
        self.sizes: dict[str, list[int]] = {}
        self.frame_shape: tuple[int, ...] | None = None
        self.records: list[RequestRecord] = []
        self.origin: float | None = None  # perf_counter() of step 0's start
        self.stopped_at: float | None = None
        self.stop_reason = "interrupted"

    def relative(self, t: float) -> float:
        return t - (self.origin if self.origin is not None else t)


RUN = _Run()


def load_from(options) -> StepLoad:
    return step_load_from(options)


def _prepare(options) -> None:
    """Read the frames, encode the packets and build the request tensors, once."""
    from anoncodec.edge import EdgeEncoder, open_source
    from anoncodec.edge.encoder import find_encoder_files

    with open_source(options.video, max_frames=options.frames) as source:
        frames = [np.ascontiguousarray(f.frame_rgb) for f in source]
    if not frames:
        raise SystemExit(f"error: no frames in {options.video}")
    encoder = EdgeEncoder(*find_encoder_files(options.export_dir))
    packets = [encoder.encode_bytes(frame) for frame in frames]
    payloads = {ANONYMIZE_FRAME.name: frames, ANALYZE_BITSTREAM.name: packets}
    RUN.inputs = {name: [request_inputs(name, p) for p in items] for name, items in payloads.items()}
    RUN.sizes = {name: [payload_size(p) for p in items] for name, items in payloads.items()}
    RUN.frame_shape = frames[0].shape


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    options = environment.parsed_options
    if options is None:  # imported by a tool, not run by Locust
        return
    load_from(options)  # refuse a bad staircase before preparing anything
    _prepare(options)


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    options = environment.parsed_options
    if options is None:
        return
    if options.requests_csv:
        write_requests_csv(sorted(RUN.records, key=lambda r: r.start_s), options.requests_csv)
    if options.run_json:
        until = RUN.stopped_at if RUN.stopped_at is not None else (
            RUN.relative(time.perf_counter()) if RUN.origin is not None else 0.0)
        info = {"load": load_from(options).to_dict(), "slo_ms": options.slo_ms, "until_s": until,
                "stop_reason": RUN.stop_reason, "frame_shape": list(RUN.frame_shape or ()),
                "mean_bytes": {k: sum(v) / len(v) for k, v in RUN.sizes.items() if v}}
        Path(options.run_json).parent.mkdir(parents=True, exist_ok=True)
        Path(options.run_json).write_text(json.dumps(info, indent=2) + "\n")


class _EnsembleUser(User):
    """One camera-like client with its own gRPC channel calling one ensemble in a closed loop."""

    abstract = True
    wait_time = constant(0)
    ensemble = ""

    def on_start(self) -> None:
        url = (self.host or "127.0.0.1:8001").split("://", 1)[-1]
        self.client = grpcclient.InferenceServerClient(url)
        self.requested = requested_outputs(self.ensemble)
        self.timeout = self.environment.parsed_options.request_timeout
        self.index = 0

    def on_stop(self) -> None:
        self.client.close()

    @task
    def infer(self) -> None:
        inputs = RUN.inputs.get(self.ensemble)
        if not inputs:
            raise StopUser()
        k = self.index % len(inputs)
        self.index += 1
        error = None
        start = time.perf_counter()
        try:
            self.client.infer(self.ensemble, inputs[k], outputs=self.requested, client_timeout=self.timeout)
        except InferenceServerException as exc:
            error = exc
        elapsed_ms = 1000 * (time.perf_counter() - start)
        size = RUN.sizes[self.ensemble][k]
        RUN.records.append(RequestRecord(RUN.relative(start), self.ensemble, elapsed_ms, error is None, size,
                                         "" if error is None else str(error)[:300]))
        self.environment.events.request.fire(request_type="grpc", name=self.ensemble, response_time=elapsed_ms,
                                             response_length=size, exception=error, context={})


class AnonymizeFrameUser(_EnsembleUser):
    """Sends raw frames to ``anonymize_frame``."""

    ensemble = ANONYMIZE_FRAME.name


class AnalyzeBitstreamUser(_EnsembleUser):
    """Sends camera-encoded packets to ``analyze_bitstream``."""

    ensemble = ANALYZE_BITSTREAM.name


class StepLoadShape(LoadTestShape):
    """The staircase of :class:`anoncodec.qa.loadtest.StepLoad`, optionally stopping at the first breach."""

    def tick(self):
        options = self.runner.environment.parsed_options
        load = load_from(options)
        if RUN.origin is None:
            RUN.origin = self.start_time
        t = self.get_run_time()
        step = load.step_at(t)
        if step is None:
            RUN.stopped_at, RUN.stop_reason = load.duration_s, "completed"
            return None
        if options.stop_on_breach and step > 0 and step_breached(RUN.records, load, step - 1, options.slo_ms):
            RUN.stopped_at, RUN.stop_reason = step * load.step_s, f"step {step - 1} breached the SLO"
            return None
        return load.tick(t)
