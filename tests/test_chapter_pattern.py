"""Every chapter follows the one pattern (``chapters.ChapterModule``): its knobs, identity, claims,
runs, settings table, a ``Measuring`` that measures and controls each claim one seed at a time, and its
claims as measured; the template chapter follows it too and builds in the smoke profile."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from geovae_core.chapters import ChapterModule, ClaimMeasures, chapter_module, chapter_notebooks, template
from geovae_core.results import ClaimSpec

REPO = Path(__file__).resolve().parent.parent
IDS = list(chapter_notebooks())


@pytest.mark.parametrize("module", [*(chapter_module(i) for i in IDS), template], ids=[*IDS, "template"])
def test_every_chapter_follows_the_pattern(module):
    assert isinstance(module, ChapterModule)
    chapter_id = module.CHAPTER.id
    assert module.CHAPTER.settings is module.SETTINGS
    assert module.CLAIMS and all(isinstance(spec, ClaimSpec) for spec in module.CLAIMS.values())
    assert all(key == spec.id and key.startswith(f"{chapter_id}-") for key, spec in module.CLAIMS.items())
    measuring = module.Measuring
    assert list(inspect.signature(measuring.__call__).parameters)[1:3] == ["runs", "final"]
    assert list(inspect.signature(measuring.controls).parameters)[1:] == ["runs", "seed"]
    claims = list(inspect.signature(module.claims).parameters)
    assert claims[:5] == ["params", "followed", "measuring", "controls", "runs"]


def test_a_module_without_the_pattern_is_refused():
    class Partial:
        SETTINGS = CHAPTER = CLAIMS = Measuring = None

    assert not isinstance(Partial(), ChapterModule)  # no experiments, settings_rows or claims


def test_claim_ids_are_unique_across_the_book():
    ids = [claim for i in IDS for claim in chapter_module(i).CLAIMS]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_the_template_chapter_builds_in_the_smoke_profile_and_its_measures_follow_the_pattern(tmp_path):
    """papermill runs the template notebook in smoke: every cell runs, the claim gets controls per
    seed from real models and a verdict word, and its Measuring is a ClaimMeasures."""
    out = tmp_path / "N0.ipynb"
    env = {**os.environ, "GEOVAE_PROFILE": "smoke", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(REPO / "templates" / "N0-template.ipynb"), str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(out, as_version=4)
    headline = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
    line = next(x for x in headline.splitlines() if x.startswith("N0-small-perturbations-barely-change: "))
    # its measure per seed and verdict, or (where its smoke runs did not train) the verdict alone
    assert line.endswith("runs did not train") or ("0: " in line and "→ " in line), line
    params = type("P", (), {"seeds": [0, 1]})
    assert isinstance(template.Measuring(params, None), ClaimMeasures)
