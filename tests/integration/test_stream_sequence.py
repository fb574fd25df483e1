"""analyze_stream on a real tritonserver: two cameras' sequences interleaved under the
sequence batcher, a lost delta and a server crash and restart in the middle; every decoded frame is
the one the camera's own state says, byte for byte, and a delta sent to the stateless
analyze_bitstream is refused."""

from __future__ import annotations

import numpy as np
import pytest

from tests.integration.conftest import start_own_server

pytestmark = [pytest.mark.slow, pytest.mark.triton]

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (extra `serve`) is not installed")


def _frames(samples_dir, n: int) -> list[np.ndarray]:
    from anoncodec.frames import read_frames

    frames = read_frames(samples_dir / "vtest_excerpt.avi", max_frames=n)
    return [np.ascontiguousarray(f[:192, :256]) for f in frames]


def _intra(sender, client) -> np.ndarray:
    """What analyze_bitstream decodes from the latent the camera believes the server holds."""
    from anoncodec.packet import Packet, Stream, pack

    tables = sender.encoder.encoder.tables
    y = sender.encoder.replenish.reference_latent()
    payload, _ = tables.encode(y)
    packet = Packet(tables.model_id, "factorized", 192, 256, (Stream(tuple(y.shape), payload),))
    return _bitstream(client, pack(packet)).as_numpy("ANONYMIZED")


def _bitstream(client, data: bytes):
    from anoncodec.contract import ANALYZE_BITSTREAM
    from anoncodec.edge.request import request_inputs, requested_outputs

    return client.infer(ANALYZE_BITSTREAM.name, request_inputs(ANALYZE_BITSTREAM, data),
                        outputs=requested_outputs(ANALYZE_BITSTREAM))


def test_two_cameras_interleaved_with_a_lost_packet_and_a_restart(exported, samples_dir, tmp_path):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from anoncodec.edge.encoder import EdgeEncoder
    from anoncodec.edge.sequence import SequenceEncoder, StreamSender
    from anoncodec.packet import pack
    from anoncodec.replenish import ReplenishConfig

    server = start_own_server(exported, tmp_path)
    try:
        config = ReplenishConfig(keyframe_interval=100, threshold=0.0)
        cameras = [StreamSender(server.grpc_url, SequenceEncoder(
            EdgeEncoder(exported / "onnx" / "encoder.onnx", exported / "onnx" / "tables.npz"), config),
            camera_id=cid, retry_delay_s=0.5) for cid in (11, 12)]
        client = grpcclient.InferenceServerClient(server.grpc_url)
        frames = _frames(samples_dir, 8)
        kinds: dict[int, list[str]] = {11: [], 12: []}

        def step(i: int) -> None:
            for k, cam in enumerate(cameras):  # interleaved: A, B, A, B, ...
                result = cam.send(frames[(i + 3 * k) % len(frames)])
                kinds[cam.camera_id].append(result.frame_type)
                assert np.array_equal(result.anonymized, _intra(cam, client)), (cam.camera_id, i)
                assert result.boxes_xyxy.ndim == 2 and result.boxes_xyxy.shape[1] == 4

        for i in range(3):
            step(i)
        assert kinds == {11: ["key", "delta", "delta"], 12: ["key", "delta", "delta"]}

        # a delta cannot go to the stateless entry point
        delta = pack(cameras[0].encoder.encode(frames[5]))
        with pytest.raises(InferenceServerException, match=r"\[packet:frame-type\]"):
            _bitstream(client, delta)
        # ... and that packet is now lost: camera 11's next delta is refused, it resyncs
        result = cameras[0].send(frames[6])
        assert result.frame_type == "key" and result.resyncs == 1
        assert np.array_equal(result.anonymized, _intra(cameras[0], client))
        step(3)
        assert kinds[12][-1] == "delta" and kinds[11][-1] == "delta"

        # the server crashes in the middle (SIGKILL, stubs included) and comes back on the
        # same ports: both cameras resync with a keyframe, no frame decodes wrong
        server.kill()
        server.start()
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for k, cam in enumerate(cameras):
            result = cam.send(frames[k])
            assert result.frame_type == "key" and result.resyncs >= 1
            assert np.array_equal(result.anonymized, _intra(cam, client))
        step(4)
        assert kinds[11][-1] == "delta" and kinds[12][-1] == "delta"
        for cam in cameras:  # END frees the states; the server can then stop at once
            assert cam.send(frames[7], end=True).frame_type == "delta"
            cam.close()
    finally:
        process = server.process
        server.close()
    assert process.returncode == 0, server.log_tail()
