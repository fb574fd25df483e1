"""Test tooling stays apart from the product: nothing Triton or the camera loads imports anoncodec.qa."""

from __future__ import annotations

import ast

from tests.conftest import REPO

PRODUCT = ("serving", "codec", "edge", "packet.py", "errors.py", "entropy_coder.py", "contract.py")


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_serving_codec_and_edge_never_import_qa():
    root = REPO / "anoncodec"
    files = [p for part in PRODUCT for p in ((root / part).rglob("*.py") if (root / part).is_dir() else [root / part])]
    assert len(files) > 20
    offenders = {str(p.relative_to(REPO)): sorted(n for n in _imports(p) if n.startswith("anoncodec.qa"))
                 for p in files}
    assert not {k: v for k, v in offenders.items() if v}


def test_the_model_repository_loads_no_test_tooling():
    for model_py in (REPO / "model_repository").glob("*/1/model.py"):
        assert not any(n.startswith("anoncodec.qa") for n in _imports(model_py)), model_py
    assert not (REPO / "anoncodec" / "serving" / "fuzz.py").exists()
