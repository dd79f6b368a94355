"""A pytest plugin (loaded by ``pyproject.toml``'s ``addopts``) that orders ``make test``'s parts,
lets them share compiled code, and says how long each took.

The parts: the unit tests (``tests/``), nbval (the notebooks), and the book in the browser
(``tests/test_book_in_browser.py``: the runner's smoke execution, the book build, the pages
opened in Chromium). The browser part runs last, so that the runner finds the models nbval
trained in the session's cache (``conftest.py``). nbval's kernels also keep numba's compiled
code (UMAP's) where the runner's kernels look for it, ``$GEOVAE_CACHE/numba`` (see
``runner.numba_cache``), unless ``NUMBA_CACHE_DIR`` is set. The browser part's fixtures report
their steps and counts with ``record``; the summary at the end of the run prints them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

BROWSER_TESTS = "test_book_in_browser.py"
PARTS = ("unit tests", "nbval", "book in the browser")

seconds = dict.fromkeys(PARTS, 0.0)
files = {part: set() for part in PARTS}
steps = {}  # a step of the browser part -> seconds, in the order recorded
counts = {}  # name -> number, printed in the order recorded
notes = []  # lines printed after the counts


def record(step: str | None = None, spent: float = 0.0, **numbers) -> None:
    """Record how long a step of the browser part took, and/or counts to print at the end."""
    if step is not None:
        steps[step] = steps.get(step, 0.0) + spent
    counts.update(numbers)


def note(text: str) -> None:
    """A line to print under the counts."""
    notes.append(text)


def part_of(item) -> str:
    path = Path(str(item.path))
    if path.suffix == ".ipynb":
        return "nbval"
    return "book in the browser" if path.name == BROWSER_TESTS else "unit tests"


def pytest_configure(config):
    if os.environ.get("GEOVAE_CACHE"):  # conftest.py's session cache, set when it was imported
        os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ["GEOVAE_CACHE"]) / "numba"))


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: PARTS.index(part_of(item)))  # stable: each part keeps its order
    for item in items:
        if part_of(item) == "nbval":  # a notebook's cells run its chapter: slow
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.perf_counter()
    yield
    part = part_of(item)
    seconds[part] += time.perf_counter() - started
    files[part].add(str(item.path))


def pytest_terminal_summary(terminalreporter):
    if not any(files.values()):
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "time per part")
    for part in PARTS:
        if files[part]:
            what = "notebooks" if part == "nbval" else "test files"
            write(f"{part:<26}{seconds[part]:7.1f} s   ({len(files[part])} {what})")
    if steps and files["book in the browser"]:
        for step, spent in steps.items():
            write(f"  {step:<24}{spent:7.1f} s")
        write(f"  {'browser check':<24}{seconds['book in the browser'] - sum(steps.values()):7.1f} s")
    if counts:
        write("counts: " + ", ".join(f"{name.replace('_', ' ')}: {value}" for name, value in counts.items()))
    for line in notes:
        write(line)
