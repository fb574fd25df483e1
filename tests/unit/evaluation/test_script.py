"""script_main: the shared main of the benchmark scripts."""

import argparse

from anoncodec.errors import ConfigError
from anoncodec.evaluation.script import script_main


def _parse(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--x", default="1")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


def test_records_the_command_and_returns_run_status():
    seen = {}

    def run(args, command):
        seen.update(x=args.x, command=command)
        return 0

    assert script_main("benchmarks/demo.py", _parse, run, ["--x", "a b"]) == 0
    assert seen == {"x": "a b", "command": "python benchmarks/demo.py --x 'a b'"}


def test_project_errors_are_one_line_with_status_2(capsys):
    def run(args, command):
        raise ConfigError("bad spec")

    assert script_main("benchmarks/demo.py", _parse, run, []) == 2
    assert capsys.readouterr().err == "demo: error: bad spec\n"
