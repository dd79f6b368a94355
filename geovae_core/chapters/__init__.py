"""The book's chapters, one module each (``chapters/n1.py`` ... ``n11.py``): a chapter's id, its
title, the documents' sections it regenerates and its knobs per profile.

The list of chapters is written once, in the book's table of contents (``_toc.yml``): a chapter
is a page ``executed/N<k>-<slug>`` there, its notebook ``notebooks/N<k>-<slug>.ipynb``, and
its module ``chapters/n<k>.py``. A notebook imports its own module
(``from geovae_core.chapters import n1``), so that the page's fingerprint follows its settings.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import yaml

from ..errors import ParameterError
from ..profiles import Settings
from ..storage import REPO_ROOT

TOC = REPO_ROOT / "_toc.yml"


@dataclass(frozen=True)
class Chapter:
    """One chapter: ``id`` (``N1``), ``title``, the ``documents``' sections it regenerates, its ``settings``."""

    id: str
    title: str
    documents: str
    settings: Settings

    @property
    def notebook(self) -> str:
        """The notebook's stem, as the table of contents names it (``N1-autoencoders-generate``)."""
        return chapter_notebooks()[self.id]

    @property
    def heading(self) -> str:
        return f"{self.id} · {self.title}"


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
