"""N0 · A template chapter: the pattern every chapter follows (``chapters.ChapterModule``) on the
smallest example, one MNIST AE per seed and one claim of P App. A.3. Copy this module and its
notebook (``templates/N0-template.ipynb``) to start a chapter; CONTRIBUTING.md "Adding a chapter"
walks through both.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import ExperimentConfig
from ..criteria import BARELY_CHANGES
from ..data import experiment_split
from ..geometry import decode, perturbation_response
from ..profiles import ADAM_SQUARED_ERROR, Settings
from ..results import ClaimSpec
from ..training import initial_model
from . import Chapter, adam_fields

# 1. The knobs, per profile: the document's value of each knob is written beside it in the notebook's
#    parameters cell; a new knob also gets its check in ``profiles.KNOBS``.
SETTINGS = Settings(
    base=dict(ADAM_SQUARED_ERROR, latent_dim=16, widths=[64, 64], epochs=8, batch_size=128, train_size=10000),
    smoke=dict(epochs=2, train_size=1000),
    paper=dict(epochs=20, train_size=60000),
    shared=("seeds", "device"),
    main=("epochs", "seeds"),
)

# 2. The chapter: its id, title and the documents' sections; ``stem`` and ``folder`` only because the
#    template is not a page of the book (a chapter is listed in _toc.yml and needs neither).
CHAPTER = Chapter("N0", "A template chapter", "P App. A.3", SETTINGS, stem="N0-template", folder="templates")

BUDGET = 20  # the documents' training length, where each claim's trend is carried to (P states none)
SMALL = 0.1  # P Fig 10's smallest perturbation

# 3. The claims: each a row (id, the documents' figure, our statement, their words, a named criterion).
CLAIMS = {
    c.id: c
    for c in (
        ClaimSpec(
            "N0-small-perturbations-barely-change",
            "P Fig 10",
            "A +0.1 perturbation of a latent dimension barely changes the AE's output.",
            "P App. A.3: 'small perturbations do not significantly alter the decoder's output'.",
            BARELY_CHANGES,
            "n0-fig",
        ),
    )
}


# 4. The runs: one config per model and seed, built by ``adam_fields`` as every P/R chapter's.
def ae_config(params, seed: int) -> ExperimentConfig:
    """An MLP AE on MNIST (``latent="point"``) on the reconstruction term alone."""
    return ExperimentConfig(
        **adam_fields(
            params,
            model="mlp",
            latent="point",
            latent_dim=params.latent_dim,
            widths=tuple(params.widths),
            activation="relu",
            likelihood=params.likelihood,
            loss_terms=(("recon", 1.0),),
            seed=seed,
        )
    )


def experiments(params) -> dict:
    """Every run of the chapter, by key: one AE per seed."""
    return {("AE", s): ae_config(params, s) for s in params.seeds}


def settings_rows(params) -> list:
    """The "P and this run" table: (setting, P's, this run's)."""
    return [
        ("AE", "MLP, latent 128", f"784-{'-'.join(map(str, params.widths))}-{params.latent_dim} (ReLU) and its mirror"),
        ("training", "not stated", f"Adam {params.lr:g}, {params.epochs} epochs on {params.train_size:,} images"),
        ("seeds", "one model", f"{params.seeds}: every claim is decided over all of them"),
    ]


# 5. The measures: one function per claim that decides the verdict and is followed along training,
#    and the controls, computed one seed at a time from that seed's models or draw of real data.
@dataclass
class Measuring:
    """What the claim is measured on: the first 64 MNIST test digits."""

    params: object
    test: torch.Tensor

    @classmethod
    def of(cls, params) -> Measuring:
        return cls(params, experiment_split(ae_config(params, params.seeds[0]))[2][:64])

    def change(self, model) -> float:
        """``BARELY_CHANGES``' measure: the RMS pixel change of the outputs at +0.1, each of 8 dimensions."""
        with torch.no_grad():
            codes = model.encode(self.test)[0]
        return perturbation_response(model, codes, range(min(8, codes.shape[1])), [SMALL])["rms_change"][0]

    def __call__(self, runs: dict, final: bool) -> dict:
        """{claim id: {seed: value}} at one kept state (the same measurement at every state)."""
        return {
            "N0-small-perturbations-barely-change": {s: self.change(runs["AE", s].model) for s in self.params.seeds}
        }

    def controls(self, runs: dict, seed: int) -> dict:
        """Without the effect: the outputs of this seed's AE and the next seed's for the same digits
        (two trained decoders differ visibly); with it: the AE at its initialisation, whose small
        weights move its output by far less than 2% for +0.1."""
        seeds = self.params.seeds
        other = seeds[(seeds.index(seed) + 1) % len(seeds)]
        drawn = self.test[torch.randperm(len(self.test), generator=torch.Generator().manual_seed(seed))[:32]]
        with torch.no_grad():
            mine, theirs = (decode(runs["AE", s].model, runs["AE", s].model.encode(drawn)[0]) for s in (seed, other))
        apart = float((mine - theirs).flatten(1).pow(2).mean(1).sqrt().mean()) if other != seed else math.nan
        return {
            "N0-small-perturbations-barely-change": (
                (apart, "the same test digits reconstructed by this seed's AE and by the next seed's"),
                (self.change(initial_model(runs["AE", seed].config)), "the AE at its initialisation, perturbed alike"),
            )
        }


# 6. The claims as measured: each spec with its trajectory, the documents' budget and its controls.
def claims(params, followed, measuring: Measuring, controls: dict, runs: dict) -> list:
    """The chapter's claims as measured (see ``CLAIMS``)."""
    return [
        spec.claim(
            followed,
            params.epochs,
            BUDGET,
            controls=controls[spec.id],
            runs=[runs["AE", s] for s in params.seeds],
        )
        for spec in CLAIMS.values()
    ]
