"""What every chapter notebook does first and last (``geovae_core.notebook``): the "Run this
chapter" box shows in JupyterLab as in the book (HTML, no MyST), its command passes lists with
``-y``; controls are gathered seed by seed; the claims' criteria are listed once for the prose;
and the headline nbval keeps marks each measured number (``≈``, three significant digits) for
``tools/nbval_numbers.py``'s comparison within 1%."""

import base64
import re
from types import SimpleNamespace

from geovae_core.chapters import n1
from geovae_core.criteria import BARELY_CHANGES, SMOOTH_PATHS
from geovae_core.notebook import ChapterPage, criteria_list, headline_text
from geovae_core.profiles import resolve
from geovae_core.results import Claim


def _page(**given):
    page = ChapterPage(n1.CHAPTER)
    page.parameters_ = resolve("N1", n1.SETTINGS, "smoke", device="cpu", **given)
    return page


def test_the_run_box_is_html_that_jupyterlab_renders_with_the_command_and_the_notebook_itself():
    box = _page(epochs=3, seeds=[0, 4]).run_box()
    assert ":::" not in box and "{download}" not in box and "```" not in box  # no raw MyST in JupyterLab
    command = re.search(r'<pre class="geovae-command">(.*?)</pre>', box).group(1)
    assert command == (
        "papermill notebooks/N1-autoencoders-generate.ipynb out.ipynb -p profile smoke -p device cpu -p epochs 3 "
        "-y &quot;seeds: [0, 4]&quot;"
    )
    payload = re.search(r'href="data:application/x-ipynb\+json;base64,([^"]+)"', box).group(1)
    assert base64.b64decode(payload).decode().startswith("{")  # the source notebook, in the link
    assert "python -m geovae_core.runner --only N1 --force" in box


def test_controls_are_asked_of_the_chapter_once_per_seed():
    asked = []

    class Measuring:
        def controls(self, runs, seed):
            asked.append(seed)
            return {"N1-x": ((runs[seed] + 5.0, "jumps"), (runs[seed], "even"))}

    gathered = _page(seeds=[0, 3]).controls(Measuring(), {0: 1.0, 3: 1.5})
    assert asked == [0, 3]
    assert gathered["N1-x"].absent == ("jumps", {0: 6.0, 3: 6.5}) and gathered["N1-x"].tell(SMOOTH_PATHS)


def _claim(criterion, per_seed):
    return Claim("N1-x", "P Fig 1", "a claim", "P says", criterion, per_seed)


def test_each_criterion_is_listed_once_with_its_threshold_for_the_prose():
    text = criteria_list([_claim(SMOOTH_PATHS, {}), _claim(SMOOTH_PATHS, {}), _claim(BARELY_CHANGES, {})])
    assert text.count("*smooth paths*") == 1 and "≤ 2" in text and "*barely changes*: RMS pixel change" in text


def test_the_headline_marks_measured_numbers_to_three_digits_and_leaves_out_runs_that_did_not_train():
    def run(seed, loss):
        config = SimpleNamespace(seed=seed, key=lambda: f"k{seed}", label=lambda: f"mlp seed={seed}")
        return SimpleNamespace(config=config, history=[{"epoch": 1, "train_loss": 9.0}, {"train_loss": loss}])

    stuck = SimpleNamespace(id="N1-y", per_seed={0: 0.57}, untrained=[("mlp", "stuck")], verdict="runs did not train")
    claims = [_claim(BARELY_CHANGES, {0: 0.0123456, 1: 0.5}), _claim(BARELY_CHANGES, {0: 1.77, 1: -0.001}), stuck]
    text = headline_text(claims, [run(1, 2.0), run(0, 149.87654)])
    assert text.splitlines() == [
        "mlp seed=0, 2 epochs: train_loss ≈150",
        "N1-x: 0: ≈0.0123, 1: ≈0.5 → mixed",
        "N1-x: 0: ≈1.77, 1: ≈-0.001 → mixed",
        "N1-y: runs did not train",  # an untrained run's measure moves with the CPU's kernels: not kept
    ]


def test_chapter_prose_quotes_the_criteria_thresholds_by_glue_not_by_hand(monkeypatch):
    import json
    import re

    from geovae_core import notebook
    from geovae_core.criteria import NAMED
    from geovae_core.pages import chapters

    glued = {}
    monkeypatch.setattr(notebook, "glue", lambda name, value: glued.__setitem__(name, value))
    notebook.glue_thresholds()
    assert glued["smooth-share"] == "nine in ten" and glued["criterion-recognised"] == "0.9"
    by_hand = [re.compile(r"\bnine in ten\b", re.I)] + [
        re.compile(rf"(≥|≤|at least|at most|below|above)\s*{re.escape(f'{c.threshold:g}')}(?![\d.])")
        for c in NAMED.values()
        if c.threshold not in (0, 1, 2)  # small whole numbers stand for other things too (steps, seeds)
    ]
    found = []
    for path in chapters():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            text = "".join(cell["source"])
            found += [f"{path.name}: {m.group(0)!r}" for p in by_hand for m in p.finditer(text)]
            found += [
                f"{path.name}: no glue {k}"
                for k in re.findall(r"`(criterion-[\w-]+|smooth-share)`", text)
                if k not in glued
            ]
    assert found == [], found
