"""The book as its readers meet it: every page executed by the runner (profile ``smoke``), the
book built with Sphinx warnings as errors, and every HTML page opened in headless Chromium.

One session fixture executes and builds once, in a throw-away folder that mirrors the
repository (its ``executed/`` is its own, so the ``executed/`` of ``make book`` is never
touched); the runner uses the session's cache and results folders (``conftest.py``), so it
finds the models nbval trained. The page tests check that each page loads, that every image
decoded, that no cell output shows an error or a figure as text, that the browser logged no
error, that the left navigation lists every chapter of ``_toc.yml``, and that the ledger shows
one row per claim of the book's results files. A full-page PNG of every page is saved in
``<build folder>/screenshots/``; the summary at the end of the run prints where.

Chromium and chromedriver are Debian's (``tools/install-browser.sh``, which ``make test`` runs).
Two switches check less, for work in progress: ``GEOVAE_BOOK_STUB="N2 N3"`` puts placeholder
pages in place of those chapters (to check the rest while they are being written), and
``GEOVAE_BOOK_HTML=_build/html`` checks a book built before (``make book``'s, with the
results files of ``GEOVAE_BOOK_RESULTS``, else ``results/``) instead of executing and building
one. ``test_the_whole_book_was_executed_and_built_by_this_run`` then fails: such a run is never green.
``GEOVAE_TEST_BOOK=<folder>`` puts the throw-away book (and its screenshots) there instead of in
pytest's temporary folders.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
import yaml

from geovae_core import pages
from geovae_core.chapters import chapter, chapter_notebooks
from geovae_core.ledger import load_book_results
from tools.pytest_parts import note, record

REPO = Path(__file__).resolve().parent.parent
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
# Not mirrored into the throw-away book: what the build makes, and what it must not see.
NOT_MIRRORED = {"executed", "_build", ".git", ".venv", "results", ".cache", ".pytest_cache", "__pycache__"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1280,1000",  # the reading width: every table and run box fits it
]
FIGURE_AS_TEXT = re.compile(r"<Figure size \d+x\d+ with \d+ Axes>")
LONGEST_SCREENSHOT = 30_000  # CSS pixels
MARK = ".geovae-test-book"
# The runner executes independent pages this many at once, each kernel on cores // JOBS threads.
JOBS = min(4, os.cpu_count() or 1)

pytestmark = pytest.mark.slow  # make test runs it; pytest -m 'not slow' leaves it out


def toc_pages(toc: dict) -> tuple:
    """(root, chapters): the root document and every other document of the table of contents,
    in order, through parts, chapters and nested sections."""
    chapters = []

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                chapters.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return toc["root"], chapters


ROOT, TOC_CHAPTERS = toc_pages(TOC)
PAGES = [ROOT, *TOC_CHAPTERS]
GENERATED = ["index", "genindex", "search"]  # pages Sphinx and Jupyter Book add
LEDGER_PAGE = f"executed/{pages.LEDGER.stem}"
STUBBED = sorted(set(os.environ.get("GEOVAE_BOOK_STUB", "").replace(",", " ").upper().split()))
PREBUILT = os.environ.get("GEOVAE_BOOK_HTML")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text``, without ipykernel's warning about TCP that every kernel prints."""
    kept = [line for line in text.strip().splitlines() if "Kernel is running over TCP" not in line]
    return "\n".join(kept[-lines:])


def _book_environment() -> dict:
    """The environment of ``make book``'s runner and build, with the session's cache and results.

    ``conftest.py`` sets ``MPLBACKEND=Agg`` for nbval; the book's kernels must use their inline
    backend, or every glued figure renders as ``<Figure size ...>`` text instead of an image."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    return env


def _prebuilt_results() -> Path:
    """The results folder of a ``GEOVAE_BOOK_HTML`` book: ``GEOVAE_BOOK_RESULTS``, else ``results/``."""
    return Path(os.environ.get("GEOVAE_BOOK_RESULTS") or REPO / "results").resolve()


def _build_folder(tmp_path_factory) -> Path:
    """A fresh folder for the throw-away book: ``GEOVAE_TEST_BOOK`` (emptied first, if it is one
    this test made before), else one in pytest's temporary folders (pytest keeps the last three)."""
    chosen = os.environ.get("GEOVAE_TEST_BOOK")
    if not chosen:
        return tmp_path_factory.mktemp("smoke-book")
    folder = Path(chosen).resolve()
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARK).is_file():
            pytest.fail(
                f"GEOVAE_TEST_BOOK={chosen}: {folder} is not empty and was not made by this test; name a new folder",
                pytrace=False,
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARK).write_text("made by tests/test_book_in_browser.py; emptied by its next run\n")
    return folder


def _stub(notebook: Path, folder: Path) -> None:
    chapter_id = pages.notebook_id(notebook).upper()
    title = chapter(chapter_id).heading if chapter_id in chapter_notebooks() else notebook.stem
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                f"# {title}\n\nA placeholder: `GEOVAE_BOOK_STUB` kept this chapter from being executed in this run."
            ),
            nbformat.v4.new_code_cell("# nothing to train", metadata={"tags": ["phase:train"]}),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "geovae", "display_name": "Python 3 (geovae)", "language": "python"}
    nbformat.write(nb, folder / notebook.name)


def _mirror(site: Path) -> None:
    """Make ``site`` the repository as the runner and Jupyter Book see it, with an empty
    ``executed/``: links to the repository's files and folders, but a copy of ``geovae_core``
    (its ``REPO_ROOT``, hence the runner's ``executed/``, is then ``site``) and, with
    ``GEOVAE_BOOK_STUB``, a ``notebooks/`` with placeholders in place of the stubbed chapters."""
    for entry in REPO.iterdir():
        if entry.name in NOT_MIRRORED or entry.name.endswith(".egg-info"):
            continue
        if entry.name == "geovae_core":
            shutil.copytree(entry, site / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif entry.name == "notebooks" and STUBBED:
            (site / entry.name).mkdir()
            for notebook in entry.glob("*.ipynb"):
                if pages.notebook_id(notebook).upper() not in STUBBED:
                    (site / entry.name / notebook.name).symlink_to(notebook)
                else:
                    _stub(notebook, site / entry.name)
        else:
            (site / entry.name).symlink_to(entry)
    (site / "executed").mkdir()


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The book executed by the runner in ``smoke`` and built with warnings as errors, in a
    throw-away folder; its HTML folder (or ``GEOVAE_BOOK_HTML``'s, built before)."""
    if PREBUILT:
        note(
            f"GEOVAE_BOOK_HTML: checked the book built before in {PREBUILT}, with the results files of "
            f"{_prebuilt_results()}"
        )
        return Path(PREBUILT).resolve()
    unknown = sorted(set(STUBBED) - {pages.notebook_id(n).upper() for n in pages.chapters()})
    assert not unknown, f"GEOVAE_BOOK_STUB names no chapter: {unknown}"
    site = _build_folder(tmp_path_factory)
    _mirror(site)
    env = {
        **_book_environment(),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }

    started = time.perf_counter()
    dry = subprocess.run(
        [sys.executable, "-m", "geovae_core.runner", "--profile", "paper", "--dry-run"],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
    )
    record("paper dry run", time.perf_counter() - started)
    for line in dry.stdout.splitlines():
        if "(paper, dry run)" in line:
            note(f"dry run: {line}")
    if dry.returncode != 0:
        pytest.fail(
            f"the paper profile's dry run failed (exit {dry.returncode}):\n"
            f"{_tail(dry.stdout, 20)}\n{_tail(dry.stderr)}",
            pytrace=False,
        )

    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "geovae_core.runner", "--profile", "smoke", "--jobs", str(JOBS)],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
    )
    record("runner (smoke)", time.perf_counter() - started)
    for line in run.stdout.splitlines():
        if re.search(r"\(smoke\): (executed|FAILED|unchanged)", line):
            note(f"runner: {line}")
    if run.returncode != 0:
        pytest.fail(
            f"the runner failed in profile smoke (exit {run.returncode}):\n"
            f"{_tail(run.stdout, 20)}\n{_tail(run.stderr)}",
            pytrace=False,
        )

    started = time.perf_counter()
    build = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter-book")), "build", str(site), "--warningiserror", "--keep-going"],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
    )
    record("book build", time.perf_counter() - started)
    if build.returncode != 0:
        output = ANSI.sub("", build.stdout + build.stderr)
        problems = [line for line in output.splitlines() if re.search(r"WARNING|ERROR|CRITICAL|Error", line)]
        pytest.fail(
            f"jupyter-book build --warningiserror failed (exit {build.returncode}):\n"
            + ("\n".join(problems) or _tail(output)),
            pytrace=False,
        )
    html = site / "_build" / "html"
    note(f"the smoke book: {html}; screenshots: {site / '_build' / 'screenshots'}")
    return html


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser(smoke_book, tmp_path_factory):
    """(driver, base URL, screenshot folder): headless Debian Chromium on the book served over HTTP."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail(
            "chromium or chromedriver is not on PATH: run tools/install-browser.sh "
            "(make test does), which installs Debian's chromium and chromium-driver",
            pytrace=False,
        )
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(smoke_book)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(60)
    screenshots = smoke_book.parent / "screenshots"
    try:
        yield driver, f"http://127.0.0.1:{server.server_address[1]}/", screenshots
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


_PAGE_FACTS = """
// an element a reader cannot see whole: its own content scrolls, a scrolling box around it
// scrolls, or it runs past the window's right edge
function cutOff(e) {
  if (e.scrollWidth > e.clientWidth + 1) return true;
  for (let a = e.parentElement; a && a.tagName !== "ARTICLE"; a = a.parentElement) {
    const overflow = getComputedStyle(a).overflowX;
    if (overflow !== "visible" && a.scrollWidth > a.clientWidth + 1) return true;
  }
  return e.getBoundingClientRect().right > document.documentElement.clientWidth + 1;
}
const outputs = Array.from(document.querySelectorAll("div.cell_output"));
const navLinks = Array.from(document.querySelectorAll("nav.bd-docs-nav a.reference"));
const ledgerRows = Array.from(document.querySelectorAll("article table")).filter(
    t => Array.from(t.querySelectorAll("thead th")).some(th => th.innerText.trim() === "claim"))
    .map(t => t.querySelectorAll("tbody tr").length);
return {
  url: location.href,
  title: document.title,
  images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth,
                                                complete: i.complete})),
  errorOutputs: Array.from(document.querySelectorAll(
      "div.output.error, div.output.traceback, .cell_output .traceback, .cell_output .error"))
      .map(e => e.innerText.slice(0, 300)),
  outputText: outputs.map(o => o.innerText).join("\\n"),
  stderr: document.querySelectorAll("div.output.stderr").length,
  figuresWithoutImage: Array.from(document.querySelectorAll("article figure"))
      .filter(f => !f.querySelector("img, svg")).map(f => f.id || f.innerText.slice(0, 80)),
  nav: navLinks.map(a => a.href.split("#")[0]),
  navCaptions: Array.from(document.querySelectorAll("nav.bd-docs-nav p.caption")).map(p => p.innerText.trim()),
  ledgerRows: ledgerRows,
  cutOff: Array.from(document.querySelectorAll("article table, article pre.geovae-command")).filter(cutOff)
      .map(e => e.tagName.toLowerCase() + ": " + e.innerText.slice(0, 80).replace(/\\s+/g, " ")),
};
"""


_tally = {"pages": 0, "images": 0, "favicon_404s_ignored": 0}  # over the pages checked


def _document(url: str, base: str) -> str:
    """``book/intro`` for ``http://127.0.0.1:<port>/book/intro.html``."""
    path = urlsplit(url).path
    return path[len(urlsplit(base).path) :].removesuffix(".html")


def _screenshot(driver, path: Path) -> None:
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], LONGEST_SCREENSHOT), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def _visit(driver, url: str) -> dict:
    """Open ``url``, let every image load (lazy ones too), and return what the page shows."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    if driver.execute_script('return document.querySelector("meta[http-equiv=refresh i]") !== null'):
        WebDriverWait(driver, 30).until(lambda d: d.current_url != url)  # index.html: a redirect to the root page
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    driver.execute_script(
        "for (const i of document.images) i.loading = 'eager';window.scrollTo(0, document.body.scrollHeight);"
    )
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )
    driver.execute_script("window.scrollTo(0, 0);")
    facts = driver.execute_script(_PAGE_FACTS)
    facts["console"] = driver.get_log("browser")
    return facts


@pytest.mark.parametrize("page", PAGES + GENERATED)
def test_page_in_the_browser(page, browser, monkeypatch):
    driver, base, screenshots = browser
    facts = _visit(driver, f"{base}{page}.html")
    _screenshot(driver, screenshots / f"{page}.png")
    problems = []
    if not facts["title"] or "404" in facts["title"]:
        problems.append(f"did not load (title {facts['title']!r})")
    broken = [i["src"] for i in facts["images"] if not (i["complete"] and i["width"] > 0)]
    problems += [f"image not decoded: {src}" for src in broken]
    problems += [f"error output: {text!r}" for text in facts["errorOutputs"]]
    if "Traceback (most recent call last)" in facts["outputText"]:
        problems.append("a cell output shows a traceback")
    problems += [f"a figure shows as text, not an image: {m}" for m in FIGURE_AS_TEXT.findall(facts["outputText"])]
    problems += [f"a figure without an image: {f}" for f in facts["figuresWithoutImage"]]
    problems += [f"cut off at 1280 px (needs a sideways scroll): {e}" for e in facts["cutOff"]]
    favicon = [e for e in facts["console"] if e["level"] == "SEVERE" and "favicon.ico" in e["message"]]
    problems += [
        f"console {e['level']}: {e['message']}" for e in facts["console"] if e["level"] == "SEVERE" and e not in favicon
    ]
    listed = {_document(href, base) for href in facts["nav"]}
    problems += [f"the left navigation lacks {doc}" for doc in TOC_CHAPTERS if doc not in listed]
    captions = [part["caption"] for part in TOC.get("parts", []) if part.get("caption")]
    if facts["navCaptions"] != captions:
        problems.append(f"the left navigation's captions are {facts['navCaptions']}, not {captions}")
    if page == LEDGER_PAGE:
        if PREBUILT:
            monkeypatch.setenv("GEOVAE_RESULTS", str(_prebuilt_results()))
        results, unreadable = load_book_results()
        claims = sum(len(r["claims"]) for r in results)
        rows = sum(facts["ledgerRows"])
        record(claim_rows=rows)
        if unreadable:
            problems.append(f"unreadable results files: {unreadable}")
        if rows != claims:
            problems.append(f"the ledger shows {rows} claim rows; the book's results files hold {claims} claims")
        if not claims and len(STUBBED) < len(chapter_notebooks()):
            problems.append("the book's results files hold no claim")
    _tally["pages"] += 1
    _tally["images"] += len(facts["images"])
    _tally["favicon_404s_ignored"] += len(favicon)
    record(**_tally)
    if facts["stderr"]:
        note(f"{page}: {facts['stderr']} stderr output(s) shown to readers")
    if problems:
        pytest.fail(f"{page} ({facts['url']}):\n" + "\n".join(problems), pytrace=False)


def test_every_html_page_of_the_build_is_checked(smoke_book):
    built = sorted(
        str(p.relative_to(smoke_book).with_suffix(""))
        for p in smoke_book.rglob("*.html")
        if not p.relative_to(smoke_book).parts[0].startswith("_")
    )
    assert built == sorted(PAGES + GENERATED)


def test_every_notebook_the_runner_executes_is_a_page_of_the_book():
    executed = {f"executed/{n.stem}" for n in pages.book_notebooks()}
    in_toc = {page for page in PAGES if page.startswith("executed/")}
    assert executed - in_toc == set(), "executed by the runner, missing from _toc.yml"
    assert in_toc - executed == set(), "in _toc.yml under executed/, but no notebook of the runner makes it"


def test_the_whole_book_was_executed_and_built_by_this_run():
    """A run with ``GEOVAE_BOOK_STUB`` or ``GEOVAE_BOOK_HTML`` checks something less: never green."""
    assert not STUBBED, (
        f"GEOVAE_BOOK_STUB replaced {', '.join(STUBBED)} by placeholders: this run checked a partial book"
    )
    assert not PREBUILT, f"GEOVAE_BOOK_HTML: this run checked a book built before ({PREBUILT}), not this tree's"


def test_the_paper_profile_s_dry_run_built_and_stepped_every_chapter_s_runs(smoke_book):
    """A paper-size crash (shapes, memory, a 512-channel map) is caught here, without a GPU."""
    if PREBUILT:
        pytest.fail("GEOVAE_BOOK_HTML: the book was built before, without this run's dry run", pytrace=False)
    table = json.loads((smoke_book.parent.parent / "executed" / "dry-run.json").read_text())
    chapters = table["chapters"]
    assert set(chapters) == {pages.notebook_id(n) for n in pages.chapters()}
    for chapter_id, row in chapters.items():
        assert row["error"] is None, (chapter_id, row["error"])
        assert row["runs"] > 0 and row["largest_parameters"] > 0 and row["gpu_hours"] > 0, chapter_id
        assert row["profile"] == "paper", chapter_id


def test_every_control_of_the_book_is_computed_from_each_seed_s_own_models(smoke_book, monkeypatch):
    """A control is the claim's measure on a real model or real data of each seed: one whose value
    is the same to the bit in every seed did not read the seed's models (arithmetic, a constant, a
    shared draw) and fails here; so does a claim that was measured without controls. One exception:
    where the claim's runs did not train (the smoke profile's), a control may sit at its measure's
    floor of 0 in every seed (an untrained decoder's grey outputs carry more ink than real digits,
    so ``metrics.digit_like`` scores real digits standing for them 0); any other shared value fails."""
    if PREBUILT:
        monkeypatch.setenv("GEOVAE_RESULTS", str(_prebuilt_results()))
    results, _ = load_book_results()
    checked, same, without = 0, [], []
    for result in results:
        for claim in result["claims"]:
            controls = claim.get("controls")
            if controls is None:
                if any(v is not None for v in claim["per_seed"].values()):
                    without.append(claim["id"])
                continue
            for side in ("absent", "present"):
                values = list(controls[side]["per_seed"].values())
                checked += len(values) > 1
                at_floor = claim.get("did_not_train") and values[0] == 0.0
                if len(values) > 1 and len(set(values)) == 1 and not at_floor:
                    same.append(f"{claim['id']} ({side}: {controls[side]['input']}): {values[0]} in every seed")
    note(f"controls: {checked} sides of two or more seeds checked")
    assert checked, "no control was measured over two or more seeds"
    assert not same, "controls that do not depend on the seed:\n" + "\n".join(same)
    assert not without, f"claims measured without controls: {without}"


_EXPLORER = """
const root = document.querySelector("div.geovae-explorer");
if (!root) return null;
const data = JSON.parse(document.getElementById(root.id + "-data").textContent);
const out = {};
for (const [name, check] of Object.entries(data.check)) {
  const torch = Uint8Array.from(atob(check.pixels), c => c.charCodeAt(0));
  const expected = new Float32Array(torch.buffer);
  let worst = 0;
  check.z.forEach(([z1, z2], k) => {
    const page = window.geovaeExplorer.decode(name, z1, z2);
    for (let i = 0; i < 784; i++) worst = Math.max(worst, Math.abs(page[i] - expected[784 * k + i]));
  });
  out[name] = {points: check.z.length, worst: worst};
}
return out;
"""


def test_the_latent_explorer_decodes_as_the_torch_decoder_and_follows_a_drag(browser):
    """N11's explorer: at every check point the page's decoded image equals the torch decoder's
    output to within 1/255 per pixel, for the VAE and the AE; dragging across a pad changes the image."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver, base, screenshots = browser
    n11 = next(n for n in pages.chapters() if pages.notebook_id(n) == "N11")
    driver.get(f"{base}executed/{n11.stem}.html")
    agreement = driver.execute_script(_EXPLORER)
    assert agreement is not None, "N11 has no latent explorer"
    assert set(agreement) == {"VAE", "AE"}
    for name, check in agreement.items():
        assert check["points"] >= 10 and check["worst"] <= 1 / 255, (name, check)
    record(explorer_points=sum(c["points"] for c in agreement.values()))
    note(
        "latent explorer: page vs torch decoder, largest pixel difference "
        + ", ".join(f"{name} {c['worst']:.2e} over {c['points']} points" for name, c in agreement.items())
    )
    for pad in driver.find_elements(By.CSS_SELECTOR, "div.geovae-explorer canvas[tabindex]"):
        view = driver.find_element(
            By.CSS_SELECTOR,
            f"div.geovae-explorer canvas[data-model='{pad.get_attribute('data-model')}']:not([tabindex])",
        )
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", pad)
        before = driver.execute_script("return arguments[0].toDataURL();", view)
        ActionChains(driver).move_to_element_with_offset(pad, -100, -100).click_and_hold().move_by_offset(
            180, 160
        ).release().perform()
        after = driver.execute_script("return arguments[0].toDataURL();", view)
        assert after != before, f"dragging across the {pad.get_attribute('data-model')} pad did not change its image"
    screenshots.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(screenshots / "explorer.png"))
