"""Test tooling: the packet and request fuzzer, the load-test arithmetic, the direct pipeline.

Nothing here is served: Triton's python backend loads :mod:`anoncodec.serving` only, and
no module of serving, codec or edge imports this package. ``qa`` may import anoncodec's
errors, packet, entropy_coder, edge and serving; ``tritonclient`` and ``psutil`` lazily;
never torch.

- :mod:`~anoncodec.qa.fuzz_packets`: malformed packets and the in-process decoder fuzz;
- :mod:`~anoncodec.qa.fuzz_requests`: malformed requests to the served ensembles;
- :mod:`~anoncodec.qa.fuzz_server`: sends them to a running server and checks it;
- :mod:`~anoncodec.qa.fuzz_report`: what a fuzz run found;
- :mod:`~anoncodec.qa.step_load`: the Locust step load and its flags (stdlib only);
- :mod:`~anoncodec.qa.loadtest`: per-step statistics and capacity (stdlib only);
- :mod:`~anoncodec.qa.serving_overhead`: the served stages chained in-process and over
  gRPC, to measure what Triton costs (``benchmarks/serving_overhead.py``).
"""
