"""The book's pages as the runner sees them: which they are, in what order they run, and
whether a page's executed copy is current.

The pages are the table of contents' ``executed/<name>`` entries (``_toc.yml``, the one list of
them); each is executed from ``notebooks/<name>.ipynb`` (a chapter) or ``book/<name>.ipynb``.
A page is current when its executed copy carries its fingerprint: its cells' sources and tags, the profile,
the code of the ``geovae_core`` modules it imports (``dependencies.closure``) and the files it
reads (the results files for the ledger; the timings and dry-run table for "Reproducing").
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat

from .chapters import toc_pages
from .dependencies import PACKAGE, closure, code_digest, digest
from .storage import REPO_ROOT, results_dir

EXECUTED = REPO_ROOT / "executed"
LEDGER = REPO_ROOT / "book" / "ledger.ipynb"
MEASURE = REPO_ROOT / "book" / "measure.ipynb"
REPRODUCE = REPO_ROOT / "book" / "reproduce.ipynb"
SOURCES = (REPO_ROOT / "notebooks", REPO_ROOT / "book")
# Each page's seconds in a cold quick build on 2 cores (the order pages start in on a fresh clone).
REFERENCE_SECONDS = REPO_ROOT / "book" / "page-seconds.json"


def timings_file() -> Path:
    return EXECUTED / "timings.json"


def dry_run_file() -> Path:
    return EXECUTED / "dry-run.json"


def book_notebooks() -> list:
    """Every page the runner executes, in the book's order (the table of contents')."""
    found = []
    for page in toc_pages():
        folder, _, name = page.rpartition("/")
        if folder == "executed":
            found.append(next((s / f"{name}.ipynb" for s in SOURCES if (s / f"{name}.ipynb").is_file()), None))
    missing = [page for page, path in zip(toc_pages(), found) if path is None]
    if missing:
        raise FileNotFoundError(f"_toc.yml lists {', '.join(missing)}, with no notebook in notebooks/ or book/")
    return found


def chapters() -> list:
    """The chapters' notebooks, in book order."""
    return [n for n in book_notebooks() if n.parent == SOURCES[0]]


def stages(notebooks: list) -> list:
    """``notebooks`` in the groups that run one after another: the chapters (independent of
    each other), then "How we measure" and the ledger (they read the chapters' results), then
    "Reproducing this book" (it reads every page's timings)."""
    groups = [
        [n for n in notebooks if n not in (MEASURE, LEDGER, REPRODUCE)],
        [n for n in notebooks if n in (MEASURE, LEDGER)],
        [n for n in notebooks if n == REPRODUCE],
    ]
    return [group for group in groups if group]


def expected_seconds(notebook: Path, profile: str) -> float | None:
    """The page's seconds in this checkout's last build of ``profile`` (``executed/timings.json``),
    else in the reference cold quick build (``book/page-seconds.json``); None when neither has them."""
    page = notebook_id(notebook)
    recorded = read_json(timings_file()).get("pages", {}).get(page, {})
    if recorded.get("profile") == profile and recorded.get("seconds"):
        return float(recorded["seconds"])
    return read_json(REFERENCE_SECONDS).get("seconds", {}).get(page)


def longest_first(notebooks: list, profile: str) -> list:
    """``notebooks`` with the longest expected first, those never timed before all (each group in
    book order): pages run a few at once then end close together (longest processing time first)."""
    expected = {n: expected_seconds(n, profile) for n in notebooks}
    return sorted(notebooks, key=lambda n: -(float("inf") if expected[n] is None else expected[n]))


def notebook_id(notebook: Path) -> str:
    """A page's id: its N-id (``N11``), or ``measure``, ``ledger``, ``reproduce``."""
    return notebook.stem.split("-")[0]


def select(only: str | None) -> list:
    """The book's pages, or only the one whose id (``N11``, ``n11``, ``ledger``) is ``only``."""
    return [n for n in book_notebooks() if not only or notebook_id(n).lower() == only.lower()]


def rerun_command(notebook: Path, profile: str) -> str:
    extra = "" if profile == "quick" else f" --profile {profile}"
    return f"python -m geovae_core.runner --only {notebook_id(notebook)} --force{extra}"


class NotebookSyntaxError(SyntaxError):
    """A code cell of a page does not parse; the message names the notebook, the cell and the line."""


def code_cells(notebook: Path) -> list:
    """The notebook's code cells as plain Python (IPython's magics translated);
    NotebookSyntaxError naming the notebook, the cell and the line of the first that does not parse."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    cells = [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]
    sources = []
    for number, cell in enumerate(cells, start=1):
        source = transform(cell.source)
        try:
            ast.parse(source)
        except SyntaxError as error:
            name = f"code cell {number}" + (f" (id {cell.get('id')})" if cell.get("id") else "")
            raise NotebookSyntaxError(
                f"{notebook.name}, {name}, line {error.lineno}: {error.msg}: {(error.text or '').strip()!r}"
            ) from None
        sources.append(source)
    return sources


def _inputs(notebook: Path) -> str | None:
    """A digest of the files a page reads: the book's results files (the ledger, "How we
    measure"), the timings of the other pages and the dry-run table ("Reproducing"); None for
    the other pages."""
    if notebook in (LEDGER, MEASURE):
        files = sorted((results_dir() / "book").glob("*.json"))
        return digest(*(part for f in files for part in (f.name, f.read_bytes())))
    if notebook == REPRODUCE:
        pages = read_json(timings_file()).get("pages", {})
        shown = {
            k: {f: v.get(f) for f in ("profile", "seconds", "phases")}
            for k, v in pages.items()
            if k != notebook_id(REPRODUCE)
        }
        table = dry_run_file()
        return digest(json.dumps(shown, sort_keys=True), table.read_bytes() if table.is_file() else "")
    return None


def _cells_digest(notebook: Path) -> str:
    """A digest of each cell's type, source and tags: not of outputs, execution counts, ids, other
    metadata or the notebook's (kernelspec, widget state), which JupyterLab rewrites on saving."""
    cells = nbformat.read(notebook, as_version=4).cells
    return digest(json.dumps([[c.cell_type, c.source, sorted(c.metadata.get("tags", []))] for c in cells]))


def fingerprint(notebook: Path, profile: str, package: Path = PACKAGE) -> dict:
    """What an executed page depends on, by part: ``source`` (its cells' types, sources and tags),
    ``profile``, ``code`` (the import closure of its code cells in ``package``) and, for the pages
    that read files, ``results``."""
    parts = {
        "source": _cells_digest(notebook),
        "profile": profile,
        "code": code_digest(closure(code_cells(notebook), package), package),
    }
    inputs = _inputs(notebook)
    return parts if inputs is None else {**parts, "results": inputs}


def _executed(notebook: Path) -> tuple:
    """(the runner's metadata in the page's executed copy, why that copy is damaged or "");
    ({}, "") when there is none."""
    try:
        copy = json.loads((EXECUTED / notebook.name).read_bytes())
    except FileNotFoundError:
        return {}, ""
    except OSError as error:
        return {}, f"unreadable: {error.strerror}"
    except ValueError:  # cut short or not text: what an interrupted copy or a full disk leaves
        return {}, "not valid JSON"
    if not (isinstance(copy, dict) and isinstance(copy.get("cells"), list) and isinstance(copy.get("metadata"), dict)):
        return {}, "not a notebook"
    mark = copy["metadata"].get("geovae")
    return (mark if isinstance(mark, dict) else {}), ""


def stored(notebook: Path) -> dict:
    """The runner's metadata in the page's executed copy ({} when there is none or it is damaged)."""
    return _executed(notebook)[0]


def failed_copy(notebook: Path, dry_run: bool = False) -> Path:
    """Where a page that failed or was interrupted leaves its partly executed copy."""
    return EXECUTED / f"{notebook.stem}{'.dry-run' if dry_run else ''}.failed.ipynb"


def status(notebook: Path, mark: dict) -> str:
    """``failed`` (a partly executed copy is there), ``never run``, ``damaged (<why>)`` (the
    executed copy cannot be read: it is executed again), ``current`` or ``stale (<parts> changed)``
    against the fingerprint ``mark``."""
    if failed_copy(notebook).is_file():
        return "failed"
    if not (EXECUTED / notebook.name).is_file():
        return "never run"
    metadata, damage = _executed(notebook)
    if damage:
        return f"damaged ({damage})"
    previous = metadata.get("fingerprint")
    previous = previous if isinstance(previous, dict) else {}
    changed = [part for part, value in mark.items() if previous.get(part) != value]
    return f"stale ({', '.join(changed)} changed)" if changed else "current"


def read_json(path: Path) -> dict:
    """A JSON file's object, or {} when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
