"""Run the book's notebooks through papermill into ``executed/``, for Jupyter Book to render.

    python -m geovae_core.runner --profile quick      # every chapter, then the ledger
    python -m geovae_core.runner --only N11 --force   # one chapter, even if unchanged

A notebook is skipped when its executed copy carries the same fingerprint: the hash of the
source notebook, of ``geovae_core``'s code, of the profile (and, for the ledger, of the
results files). Trained models come from the result cache either way.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill

from .results import BOOK_RUN
from .storage import REPO_ROOT, results_dir

EXECUTED = REPO_ROOT / "executed"
LEDGER = REPO_ROOT / "book" / "ledger.ipynb"
MEASURE = REPO_ROOT / "book" / "measure.ipynb"


def book_notebooks() -> list:
    """The chapter notebooks in order (by N-id), the "How we measure" page, then the ledger,
    which reads the chapters' results."""
    return sorted((REPO_ROOT / "notebooks").glob("N*.ipynb"), key=lambda p: int(p.stem[1:].split("-")[0])) + [MEASURE, LEDGER]


def notebook_id(notebook: Path) -> str:
    """A notebook's id: its N-id (``N11``), or ``ledger``."""
    return notebook.stem.split("-")[0]


def select(only: str | None) -> list:
    """The book's notebooks, or only the one whose id (``N11``, ``n11``, ``ledger``) is ``only``."""
    return [n for n in book_notebooks() if not only or notebook_id(n).lower() == only.lower()]


def fingerprint(notebook: Path, profile: str) -> str:
    digest = hashlib.sha256(notebook.read_bytes() + profile.encode())
    for source in sorted((REPO_ROOT / "geovae_core").glob("*.py")):
        digest.update(source.read_bytes())
    if notebook == LEDGER:
        for result in sorted((results_dir() / "book").glob("*.json")):
            digest.update(result.read_bytes())
    return digest.hexdigest()


def execute(notebook: Path, profile: str, force: bool = False) -> str:
    """Execute one notebook unless its executed copy is current; return what happened."""
    target = EXECUTED / notebook.name
    mark = fingerprint(notebook, profile)
    if not force and target.is_file():
        if nbformat.read(target, as_version=4).metadata.get("geovae", {}).get("fingerprint") == mark:
            return "unchanged, skipped"
    EXECUTED.mkdir(exist_ok=True)
    partial = EXECUTED / f"{notebook.stem}.failed.ipynb"
    started = time.perf_counter()
    os.environ[BOOK_RUN] = "1"  # the kernel inherits it: results go to the book's folder
    try:
        papermill.execute_notebook(str(notebook), str(partial), parameters={"profile": profile},
                                   cwd=str(notebook.parent), progress_bar=False, kernel_name="geovae")
    except papermill.PapermillExecutionError as error:
        raise SystemExit(f"{notebook.name} failed ({error.ename}: {error.evalue}); "
                         f"the partly executed notebook is {partial}") from None
    executed = nbformat.read(partial, as_version=4)
    for cell in executed.cells:  # the reader sees the parameters table, not papermill's cell
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.metadata["tags"].append("remove-cell")
    executed.metadata["geovae"] = {"fingerprint": mark, "profile": profile,
                                   "seconds": round(time.perf_counter() - started, 1)}
    nbformat.write(executed, partial)
    partial.replace(target)
    return f"executed in {time.perf_counter() - started:.1f} s"


CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def store(notebook: Path) -> None:
    """Rewrite a source notebook as git keeps it: executed once in ``smoke``, with outputs
    kept only in the cells nbval compares (marked ``# NBVAL_CHECK_OUTPUT``)."""
    smoke = EXECUTED / f"{notebook.stem}.store.ipynb"
    EXECUTED.mkdir(exist_ok=True)
    papermill.execute_notebook(str(notebook), str(smoke), parameters={"profile": "smoke"},
                               cwd=str(notebook.parent), progress_bar=False, kernel_name="geovae")
    source = nbformat.read(notebook, as_version=4)
    executed = {c.source: c for c in nbformat.read(smoke, as_version=4).cells if c.cell_type == "code"}
    for cell in source.cells:
        if cell.cell_type == "code":
            checked = cell.source.startswith(CHECK_MARK) and cell.source in executed
            cell.outputs = executed[cell.source].outputs if checked else []
            cell.execution_count = executed[cell.source].execution_count if checked else None
            cell.metadata.pop("execution", None)
    nbformat.write(source, notebook)
    smoke.unlink()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--only", help="run only this chapter (its N-id, e.g. N1) or the ledger")
    parser.add_argument("--force", action="store_true", help="execute even if unchanged")
    parser.add_argument("--store", action="store_true",
                        help="rewrite the source notebooks as git keeps them (checked outputs only)")
    args = parser.parse_args(argv)
    notebooks = select(args.only)
    if not notebooks:
        print(f"--only: no notebook has the id {args.only!r}; valid ids: "
              f"{', '.join(notebook_id(n) for n in book_notebooks())}", file=sys.stderr)
        return 2
    if args.store:
        for notebook in notebooks:
            store(notebook)
            print(f"{notebook.name}: stored with checked outputs only")
        return 0
    for notebook in notebooks:
        print(f"{notebook.stem} ({args.profile}): ", end="", flush=True)
        print(execute(notebook, args.profile, args.force), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
