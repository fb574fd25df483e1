"""Many inputs in one process: pair input files with outputs, then run them one by one.

``encode``/``decode`` load the codec once (seconds) and then call :func:`run_jobs` with the
per-file work. A file that fails (missing, unreadable, wrong model) is reported and the
others still run; outputs are written atomically, so a failure never leaves half a file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from anoncodec.errors import AnoncodecError, ConfigError

__all__ = ["Job", "BatchError", "plan_jobs", "run_jobs", "write_atomic"]


@dataclass(frozen=True)
class Job:
    """One input file and the output file it becomes (paths as given or joined, not resolved)."""

    source: str
    target: str


class BatchError(AnoncodecError):
    """Some inputs of a batch failed (each was reported when it did); the others were written."""


def _folder_files(folder: Path, suffixes: Collection[str]) -> list[Path]:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes)
    if not files:
        raise ConfigError(f"folder {str(folder)!r} has no {' / '.join(sorted(suffixes))} files")
    return files


def plan_jobs(inputs: list[str], output: str, suffixes: Collection[str], out_suffix: str) -> tuple[list[Job], bool]:
    """Pair ``inputs`` with outputs; also whether this is the single-file form.

    Args:
        inputs: files and folders (a folder stands for its files whose suffix is in ``suffixes``).
        output: with one input file, the output file (or an existing folder to write into);
            otherwise the output folder (created by :func:`run_jobs`).
        suffixes: lowercase suffixes (``".png"``) taken from input folders.
        out_suffix: suffix of the files written into an output folder (``<stem><out_suffix>``).

    Raises:
        ConfigError: the output is a file although several outputs are due, an input folder
            holds no matching file, or two inputs would write the same output.
    """
    out = Path(output)
    if len(inputs) == 1 and not Path(inputs[0]).is_dir() and not out.is_dir():
        return [Job(inputs[0], output)], True
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {output!r} is a file; with several inputs or a folder, -o must be a folder "
                          "(created if missing)")
    sources: list[Path] = []
    for item in inputs:
        path = Path(item)
        sources.extend(_folder_files(path, suffixes) if path.is_dir() else [path])
    jobs: dict[str, Job] = {}
    for source in dict.fromkeys(sources):  # the same file named twice is done once
        target = out / (source.stem + out_suffix)
        if str(target) in jobs:
            raise ConfigError(f"{jobs[str(target)].source!r} and {str(source)!r} would both write {str(target)!r}; "
                              "rename one or encode them into different folders")
        if source.exists() and source.resolve() == target.resolve():
            raise ConfigError(f"{str(source)!r} would be overwritten by its own output; pass another -o folder")
        jobs[str(target)] = Job(str(source), str(target))
    return list(jobs.values()), False


def run_jobs(jobs: list[Job], work: Callable[[Job], dict], command: str, progress: bool = True) -> None:
    """Run ``work`` on every job, printing its record as a JSON line, behind a progress bar.

    A job whose ``work`` raises :class:`AnoncodecError` is reported on stderr and skipped;
    anything else is a bug and stops the batch.

    Raises:
        BatchError: at the end, when at least one job failed.
    """
    from tqdm import tqdm

    for folder in {Path(job.target).parent for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    with tqdm(jobs, desc=command, unit="file", disable=None if progress else True, file=sys.stderr) as bar:
        for job in bar:
            try:
                record = work(job)
            except AnoncodecError as exc:
                failed.append(job.source)
                bar.write(f"anoncodec {command}: error: {exc}", file=sys.stderr)
                continue
            bar.write(json.dumps(record), file=sys.stdout)
    if failed:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        raise BatchError(f"{len(failed)} of {len(jobs)} inputs failed ({shown}); the other outputs were written")


def write_atomic(target: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``target``, then move it onto ``target``.

    Raises:
        ConfigError: the file cannot be written (no such folder, no permission, disk full).
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(f"cannot write {str(target)!r}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
