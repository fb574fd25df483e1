"""Server throughput, one lever at a time: export a repository per lever, measure the capacity
of both ensembles with Locust, and put every lever's gain in one table.

    .venv/bin/python benchmarks/throughput_levers.py                      # every lever below
    .venv/bin/python benchmarks/throughput_levers.py --lever baseline --lever int8 \\
        --step-seconds 20 --max-users 3 --out /tmp/levers

A lever is a name and the ``anoncodec export`` flags it adds (``--lever NAME`` picks some;
``--lever 'NAME=--flag value ...'`` defines one more). Defaults, each measured against
``baseline``:

    baseline          the served stack before issue 11: fall-detection YOLOv8s in fp32
    int8              the same detector quantized (--int8, anoncodec/serving/quantize.py)
    instances-2       two instances of every stage, one thread each (--instances 2 --threads 1)
    ssd               SSD-MobileNetV2 at 300x300, the served default since issue 11
    ssd-instances-2   the SSD with two instances of every stage, one thread each

For each lever: export (the ladder's default checkpoint, ``--checkpoint`` to change) into
``OUT/LEVER/repo``, then ``load_tests/run.py --separate`` on 640x480 frames of the bundled
clip (resized once into ``OUT/clip_640x480.avi``): a closed-loop staircase of 1..
``--max-users`` users, ``--step-seconds`` each, SLO p95 <= ``--slo-ms`` (the README's 2500 ms),
stopping at the first step over it. The capacity of an ensemble is the highest req/s of a
step within the SLO with no failure. Writes ``OUT/throughput_levers.json`` (every step of
every run, commit, machine) and ``OUT/throughput_levers.md`` (req/s, p50, p95 at capacity,
and the ratio to baseline). Run it with the machine otherwise idle: the two cores are the
server's, Locust's and the camera encoder's.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a source checkout
    sys.path.insert(0, str(ROOT))

from anoncodec.evaluation.script import script_main  # noqa: E402

LEVERS: dict[str, list[str]] = {
    "baseline": ["--detector", "fall-yolov8s"],
    "int8": ["--detector", "fall-yolov8s", "--int8"],
    "instances-2": ["--detector", "fall-yolov8s", "--instances", "2", "--threads", "1"],
    "ssd": ["--detector", "ssd-mobilenetv2"],
    "ssd-instances-2": ["--detector", "ssd-mobilenetv2", "--instances", "2", "--threads", "1"],
}
ENSEMBLES = ("anonymize_frame", "analyze_bitstream")
DEFAULT_CLIP = ROOT / "data" / "samples" / "vtest_excerpt.avi"


def _lever(text: str) -> tuple[str, list[str]]:
    name, sep, flags = text.partition("=")
    if sep:
        return name, shlex.split(flags)
    if text not in LEVERS:
        raise argparse.ArgumentTypeError(f"--lever {text!r}: expected one of {', '.join(LEVERS)} or NAME='--flags'")
    return text, LEVERS[text]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lever", type=_lever, action="append",
                   help="a lever to measure (repeatable; default: all of them, available ones only)")
    p.add_argument("--checkpoint", help="codec checkpoint (ladder name or path; default: the ladder's default)")
    p.add_argument("--clip", default=str(DEFAULT_CLIP), help="video the frames come from")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--max-users", type=int, default=4)
    p.add_argument("--step-seconds", type=float, default=30.0)
    p.add_argument("--settle-seconds", type=float, default=5.0)
    p.add_argument("--slo-ms", type=float, default=2500.0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "throughput_levers"),
                   help="output folder (repositories and Locust files under it; the tables too)")
    p.add_argument("--keep", action="store_true",
                   help="keep the levers of an earlier OUT/throughput_levers.json that this run does not measure "
                   "(e.g. to measure one lever again)")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def resized_clip(source: Path, dest: Path, width: int, height: int, frames: int = 16) -> Path:
    """The first ``frames`` frames of ``source`` resized to ``width x height`` (MJPG .avi)."""
    import cv2

    from anoncodec.errors import ConfigError

    if dest.is_file():
        return dest
    capture = cv2.VideoCapture(str(source))
    writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (width, height))
    written = 0
    while written < frames:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
        written += 1
    capture.release()
    writer.release()
    if written == 0:
        dest.unlink(missing_ok=True)
        raise ConfigError(f"no frames could be read from {source}")
    return dest


def available(name: str, flags: list[str]) -> bool:
    """Whether the lever's detector (if it names one) is in the catalog."""
    from anoncodec.detectors.catalog import DETECTORS

    if "--detector" not in flags:
        return True
    detector = flags[flags.index("--detector") + 1]
    return detector in DETECTORS or Path(detector).exists()


def measure(name: str, flags: list[str], args: argparse.Namespace, clip: Path, out: Path) -> dict:
    """Export the lever's repository and run the Locust staircase on it; its summary record."""
    lever_dir = out / name
    repo = lever_dir / "repo"
    export = [sys.executable, "-m", "anoncodec.cli.main", "export", "--repository", str(repo), *flags]
    if args.checkpoint:
        export += ["--checkpoint", args.checkpoint]
    start = time.perf_counter()
    done = subprocess.run(export, capture_output=True, text=True)
    if done.returncode != 0:
        return {"lever": name, "flags": flags, "error": done.stderr.strip().splitlines()[-1:]}
    report = json.loads(done.stdout.strip().splitlines()[-1])
    export_s = time.perf_counter() - start
    load = [sys.executable, str(ROOT / "load_tests" / "run.py"), "--repository", str(repo), "--separate",
            "--video", str(clip), "--max-users", str(args.max_users), "--step-seconds", str(args.step_seconds),
            "--settle-seconds", str(args.settle_seconds), "--slo-ms", str(args.slo_ms), "--stop-on-breach",
            "--out", str(lever_dir / "locust")]
    print(f"{name}: {shlex.join(load)}", flush=True)
    done = subprocess.run(load, capture_output=True, text=True)
    summary_path = lever_dir / "locust" / "summary.json"
    if done.returncode != 0 or not summary_path.is_file():
        return {"lever": name, "flags": flags, "export": report,
                "error": (done.stderr or done.stdout).strip().splitlines()[-3:]}
    summary = json.loads(summary_path.read_text())
    capacity = {}
    for ensemble in ENSEMBLES:
        run = summary["runs"].get(ensemble) or {}
        capacity[ensemble] = (run.get("capacity") or {}).get(ensemble)
    return {"lever": name, "flags": flags, "export": report, "export_s": round(export_s, 1),
            "capacity": capacity, "steps": {e: (summary["runs"].get(e) or {}).get("steps") for e in ENSEMBLES}}


def render(results: list[dict], slo_ms: float) -> str:
    """The levers table: capacity, p50 and p95 at it, and the ratio to the baseline, per ensemble."""
    base = next((r for r in results if r["lever"] == "baseline" and "capacity" in r), None)
    lines = ["| lever | export flags | ensemble | req/s | users | p50 ms | p95 ms | vs baseline |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        flags = " ".join(r["flags"]) or "(defaults)"
        if "capacity" not in r:
            lines.append(f"| {r['lever']} | `{flags}` | - | failed: {' '.join(r['error'])} | | | | |")
            continue
        for ensemble in ENSEMBLES:
            row = r["capacity"][ensemble]
            if row is None:
                lines.append(f"| {r['lever']} | `{flags}` | {ensemble} | none within {slo_ms:.0f} ms | | | | |")
                continue
            ref = base["capacity"][ensemble] if base else None
            ratio = f"{row['rps'] / ref['rps']:.2f}x" if ref else "-"
            lines.append(f"| {r['lever']} | `{flags}` | {ensemble} | {row['rps']:.2f} | {row['users']} | "
                         f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {ratio} |")
    return "\n".join(lines)


def run(args: argparse.Namespace, command: str) -> int:
    from anoncodec.evaluation.latency import environment

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = resized_clip(Path(args.clip), out / f"clip_{args.width}x{args.height}.avi", args.width, args.height)
    levers = args.lever or list(LEVERS.items())
    results = []
    for name, flags in levers:
        if not available(name, flags):
            print(f"{name}: skipped, its detector is not in the catalog", flush=True)
            continue
        results.append(measure(name, flags, args, clip, out))
        print(render(results[-1:], args.slo_ms), flush=True)
    previous = out / "throughput_levers.json"
    if args.keep and previous.is_file():
        measured = {r["lever"] for r in results}
        kept = [r for r in json.loads(previous.read_text())["results"] if r["lever"] not in measured]
        order = [name for name in LEVERS] + [r["lever"] for r in results if r["lever"] not in LEVERS]
        results = sorted(kept + results, key=lambda r: order.index(r["lever"]) if r["lever"] in order else len(order))
    table = render(results, args.slo_ms)
    record = {"benchmark": "throughput_levers", "command": command, **environment(),
              "frame": f"{args.width}x{args.height}", "slo_ms": args.slo_ms, "results": results}
    (out / "throughput_levers.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "throughput_levers.md").write_text(
        f"# Server throughput per lever\n\n`{command}`\n\n{args.width}x{args.height} frames; capacity = the "
        f"highest req/s of a Locust step with p95 <= {args.slo_ms:.0f} ms and no failure; machine "
        f"{record['device']}, {record['cores']} cores, commit {record['commit'][:12]}.\n\n{table}\n")
    print(table)
    print(f"wrote {out / 'throughput_levers.md'} and {out / 'throughput_levers.json'}")
    return 0 if all("capacity" in r for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    return script_main("benchmarks/throughput_levers.py", parse_args, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
