"""The book's chapters, one module each (``chapters/n1.py`` ... ``n11.py``, with a second module
``n<k>_claims.py`` where a chapter's claims are a job of their own), each following one pattern,
``ChapterModule``; ``template.py`` (with ``templates/N0-template.ipynb``) shows it on the smallest
example.

The list of chapters is written once, in the book's table of contents (``_toc.yml``): a chapter
is a page ``executed/N<k>-<slug>`` there, its notebook ``notebooks/N<k>-<slug>.ipynb``, and
its module ``chapters/n<k>.py``. A notebook imports its own module
(``from geovae_core.chapters import n1``), so that the page's fingerprint follows its settings.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol, runtime_checkable

import yaml

from ..errors import ParameterError
from ..profiles import Settings
from ..storage import REPO_ROOT

TOC = REPO_ROOT / "_toc.yml"


@dataclass(frozen=True)
class Chapter:
    """One chapter: ``id`` (``N1``), ``title``, the ``documents``' sections it regenerates, its
    ``settings``; ``stem`` and ``folder`` name the notebook of a chapter outside the table of
    contents (the template, in ``templates/``)."""

    id: str
    title: str
    documents: str
    settings: Settings
    stem: str = ""
    folder: str = "notebooks"

    @property
    def notebook(self) -> str:
        """The notebook's stem, as the table of contents names it (``N1-autoencoders-generate``)."""
        return self.stem or chapter_notebooks()[self.id]

    @property
    def source(self) -> str:
        """The source notebook, relative to the repository: ``notebooks/N1-autoencoders-generate.ipynb``."""
        return f"{self.folder}/{self.notebook}.ipynb"

    @property
    def heading(self) -> str:
        return f"{self.id} · {self.title}"


@runtime_checkable
class ClaimMeasures(Protocol):
    """A chapter's ``Measuring``: every claim's measure, the one function that decides its verdict
    and follows it along training, and its controls, one seed at a time."""

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} for the runs of one kept state (``final``: the whole budget)."""

    def controls(self, runs: dict, seed: int) -> dict:
        """{claim id: ((value, input without the effect), (value, input with it))} of one seed,
        each the claim's own measure on that seed's real models or draw of real data."""


@runtime_checkable
class ChapterModule(Protocol):
    """The pattern every chapter follows (``template.py`` is the smallest one; CONTRIBUTING.md
    "Adding a chapter"): its knobs per profile, its identity, its claims, the runs it trains, the
    "document and this run" table, how its claims are measured, and its claims as measured."""

    SETTINGS: Settings
    CHAPTER: Chapter
    CLAIMS: dict  # {claim id: results.ClaimSpec}
    Measuring: type  # a ClaimMeasures, made by ``Measuring.of(params)`` or the notebook

    def experiments(self, params, *more) -> dict:
        """Every run of the chapter by key: a config, or (config, per-epoch hooks)."""

    def settings_rows(self, params, *more) -> list:
        """Rows of (setting, each document's value, this run's) for ``ChapterPage.settings``."""

    def claims(self, params, followed, measuring, controls: dict, runs: dict, *more) -> list:
        """Every claim of ``CLAIMS`` as measured (``ClaimSpec.claim``), in order."""


def chapter_module(chapter_id: str) -> SimpleNamespace:
    """A chapter's names: its module ``n<k>`` and, where it has one, its claims module ``n<k>_claims``."""
    name = chapter_id.lower()
    names = dict(vars(importlib.import_module(f"{__name__}.{name}")))
    if (Path(__file__).parent / f"{name}_claims.py").is_file():
        names |= vars(importlib.import_module(f"{__name__}.{name}_claims"))
    return SimpleNamespace(**names)


def toc_pages() -> list:
    """Every page of the table of contents after the root, in book order: ``executed/N1-...``."""
    toc = yaml.safe_load(TOC.read_text())
    return [entry["file"] for part in toc.get("parts", []) for entry in part.get("chapters", [])]


def chapter_notebooks() -> dict:
    """{chapter id: notebook stem} of the chapters in the table of contents, in book order."""
    stems = [page.rpartition("/")[2] for page in toc_pages() if page.startswith("executed/N")]
    return {stem.split("-")[0]: stem for stem in stems}


def chapter(chapter_id: str) -> Chapter:
    """The chapter with this id (``N1``, any case), from its module; ParameterError listing the
    valid ids for an unknown one."""
    ids = chapter_notebooks()
    known = {i.lower(): i for i in ids}
    if chapter_id.lower() not in known:
        raise ParameterError(f"chapter {chapter_id!r} is not one of {', '.join(ids)}")
    return importlib.import_module(f"{__name__}.{chapter_id.lower()}").CHAPTER


def adam_fields(params, **fields) -> dict:
    """The training knobs most of P's and R's runs share (Adam at ``params.lr``, PyTorch's default
    initialisation, the profile's batch size, epochs, training images and device), with
    ``fields`` (the run's own) added or overriding: ``ExperimentConfig(**adam_fields(params, ...))``."""
    shared = dict(
        optimizer="adam",
        lr=params.lr,
        init_std=None,
        batch_size=params.batch_size,
        epochs=params.epochs,
        train_size=params.train_size,
        device=params.device,
    )
    return {**shared, **fields}
