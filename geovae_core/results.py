"""Measured claims: each chapter writes one JSON results file; the ledger (``ledger``) reads the book's.

A chapter executed for the book (by the runner, which sets ``GEOVAE_BOOK_RUN``) writes
``<results>/book/<notebook>.json``. Any other run (papermill by hand, JupyterLab, nbval)
writes ``<results>/runs/<notebook>-<profile>-<parameters hash>.json``, so a hand run never
changes what the book's ledger shows.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .criteria import Criterion
from .errors import ResultsNotWritableError
from .storage import atomic_json_save, check_writable, describe, results_dir
from .training import constant_model_losses
from .verdicts import (
    CANNOT_TELL,
    DID_NOT_TRAIN,
    NOT_REACHED,
    Controls,
    Judgement,
    Regime,
    loss_levelled,
    training_check,
)

BOOK_RUN = "GEOVAE_BOOK_RUN"
PAGE_FINGERPRINT = "GEOVAE_PAGE_FINGERPRINT"  # the runner's fingerprint of the page it executes


@dataclass
class Claim:
    """One claim of a document, decided by ``criterion`` on one value per seed (``per_seed``).

    ``trajectory`` ({seed: [(epochs, value), ...]}) is the same measure at every state the cache
    kept of the runs, ``budget`` the documents' training length in epochs (where the trend is
    carried to), ``controls`` the criterion on an input without and one with the effect,
    ``regime`` the training a claim about late training needs (``verdicts``). ``runs`` are the
    trained runs the values rest on (for the loss diagnostic); ``figure_label`` names the book
    figure the claim judges; ``reason`` says why a claim could not be measured.
    """

    id: str
    figure: str
    statement: str
    document_says: str
    criterion: Criterion
    per_seed: dict
    measured: str = ""
    figure_label: str = ""
    runs: list = field(default_factory=list)
    reason: str = ""
    values: dict = field(default_factory=dict)
    trajectory: dict = field(default_factory=dict)
    budget: float | None = None
    controls: Controls | None = None
    regime: Regime | None = None

    @property
    def judgement(self) -> Judgement:
        epochs = max((e for points in self.trajectory.values() for e, _ in points), default=None)
        if epochs is None and self.runs:
            epochs = max(len(r.history) for r in self.runs)
        return Judgement(
            self.criterion,
            self.per_seed,
            self.trajectory,
            self.budget,
            self.controls,
            self.regime,
            epochs,
            self.untrained,
        )

    @property
    def decision(self) -> tuple:
        """(verdict, seeds passing, seeds measured) of the criterion over the final values."""
        return self.judgement.decision

    @property
    def verdict(self) -> str:
        """holds, does not hold, mixed, not measured, not reached at this budget, or criterion cannot tell."""
        return self.judgement.word

    @property
    def not_levelled(self) -> list:
        """(label, why) of each distinct run behind this claim whose test loss had not levelled off."""
        unique = {r.config.key(): r for r in self.runs}.values()
        return sorted((r.config.label(), why) for r in unique for ok, why in [loss_levelled(r.history)] if not ok)

    @property
    def untrained(self) -> list:
        """(label, why) of each distinct run behind this claim that did not train (``run_trained``)."""
        unique = {r.config.key(): r for r in self.runs}.values()
        return sorted((r.config.label(), why) for r in unique for ok, why in [run_trained(r)] if not ok)

    def summary(self) -> str:
        """ "holds (3 of 3 seeds), settled"; "mixed (2 of 3 seeds), unsettled, moving toward
        passing"; "not reached at this budget"; "criterion cannot tell"."""
        judgement = self.judgement
        word, (_, passing, n) = judgement.word, judgement.decision
        if word in (NOT_REACHED, CANNOT_TELL, DID_NOT_TRAIN) or n == 0:
            return word
        text = f"{word} ({passing} of {n} seed{'s' if n != 1 else ''})"
        state = judgement.standing
        if state is not None:
            text += f", {state.state}" + (f", moving {state.moves}" if state.moves else "")
            if state.crosses_at is not None:
                text += f" (would cross at about {state.crosses_at:,.0f} epochs)"
        return text

    def as_dict(self) -> dict:
        judgement = self.judgement
        verdict, passing, n = judgement.decision
        state = judgement.standing
        return {
            "id": self.id,
            "figure": self.figure,
            "figure_label": self.figure_label,
            "statement": self.statement,
            "document_says": self.document_says,
            "criterion": self.criterion.as_dict(),
            "per_seed": {str(k): _number(v) for k, v in self.per_seed.items()},
            "verdict": judgement.word,
            "decision": verdict,
            "seeds_passing": passing,
            "seeds": n,
            "standing": None if state is None else {**state.__dict__},
            "at_half": judgement.at_half,
            "trajectory": {str(k): [[e, _number(v)] for e, v in points] for k, points in self.trajectory.items()},
            "budget": self.budget,
            "controls": None if self.controls is None else self.controls.as_dict(self.criterion),
            "regime": None if self.regime is None else {"epochs": self.regime.epochs, "why": self.regime.why},
            "epochs": judgement.epochs,
            "not_levelled": [list(pair) for pair in self.not_levelled],
            "did_not_train": [list(pair) for pair in judgement.untrained],
            "runs": len({r.config.key() for r in self.runs}),
            "measured": self.measured,
            "reason": self.reason,
            "values": self.values,
        }


@dataclass(frozen=True)
class ClaimSpec:
    """A row of a chapter's claims table: the claim, the figure it judges, the document's words,
    the criterion, and (for a claim about late training) the regime it needs. ``statement`` may
    name the run's numbers in braces (``{small:g}``), filled by ``claim(words=...)``."""

    id: str
    figure: str
    statement: str
    document_says: str
    criterion: Criterion
    figure_label: str = ""
    regime: Regime | None = None

    def claim(self, followed, epochs: int, budget: float | None, words: dict | None = None, **fields) -> Claim:
        """The claim as measured: its final per-seed values and trajectory from ``followed``
        (``ChapterPage.follow``; its runs trained ``epochs``), the documents' ``budget`` in epochs,
        and any other ``Claim`` field (controls, measured, runs, reason, values)."""
        return Claim(
            self.id,
            self.figure,
            self.statement.format(**(words or {})),
            self.document_says,
            self.criterion,
            followed.final.get(self.id, {}),
            figure_label=self.figure_label,
            trajectory=followed.trajectory(self.id, epochs),
            budget=budget,
            regime=self.regime,
            **fields,
        )


def _number(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def run_trained(run) -> tuple:
    """(trained?, why) of a run (``verdicts.training_check``): its final score of each term the
    constant model is defined for (``training.constant_model_losses``) against that model's."""
    final = run.history[-1] if run.history else {}
    if not any(key.endswith(("_recon", "_xent")) for key in final):
        return True, "no reconstruction or classification loss to judge"
    checks = [
        training_check(final.get(key), constant, perfect)
        for key, (constant, perfect) in constant_model_losses(run.config).items()
        if key in final
    ]
    failed = [why for ok, why in checks if not ok]
    if failed:
        return False, "; ".join(failed)
    return True, "; ".join(why for _, why in checks) or "no loss to judge"


def run_record(run) -> dict:
    """What the results file keeps of a trained run: label, length, loss, whether it levelled
    off and whether it trained."""
    history = run.history
    levelled, why = loss_levelled(history)
    trained, trained_why = run_trained(run)
    return {
        "label": run.config.label(),
        "key": run.config.key(),
        "epochs": len(history),
        "final_train_loss": history[-1].get("train_loss") if history else None,
        "levelled_off": levelled,
        "loss_diagnostic": why,
        "trained": trained,
        "training_check": trained_why,
        "seconds": round(sum(row.get("seconds", 0.0) for row in history), 1),
        "from_cache": run.from_cache,
    }


def results_path(notebook: str, parameters) -> Path:
    """Where a run of ``notebook`` with these parameters writes its results (see the module doc)."""
    if os.environ.get(BOOK_RUN):
        return results_dir() / "book" / f"{notebook}.json"
    text = json.dumps(parameters.as_dict(), sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return results_dir() / "runs" / f"{notebook}-{parameters.profile}-{digest}.json"


def check_results_writable(path: Path) -> None:
    """Before a chapter trains: its results file's folder can be written, else one line."""
    try:
        check_writable(path.parent, create=False)
    except OSError as error:
        raise ResultsNotWritableError(
            f"cannot write the results folder {path.parent} ({describe(error)}); set GEOVAE_RESULTS to a "
            f"writable folder (checked before training, so that no work is lost)"
        ) from None


def save_results(chapter, parameters, claims: list, numbers: dict, runs: list, wall_seconds: float) -> Path:
    """Write one chapter's claims, numbers, parameters and the compute behind them, with the
    fingerprint of the page that wrote them (the runner's; the ledger compares it with today's)."""
    unique = {r.config.key(): r for r in runs}.values()
    records = [run_record(r) for r in unique]
    fingerprint = os.environ.get(PAGE_FINGERPRINT)
    payload = {
        "notebook": chapter.notebook,
        "chapter": chapter.id,
        "title": chapter.title,
        "profile": parameters.profile,
        "parameters": parameters.as_dict(),
        "explicit": sorted(parameters.explicit),
        "claims": [c.as_dict() for c in claims],
        "numbers": numbers,
        "runs": records,
        "compute": {
            "profile": parameters.profile,
            "seeds": parameters.values.get("seeds"),
            "runs": len(records),
            "trained_seconds": round(sum(r["seconds"] for r in records), 1),
            "wall_seconds": round(wall_seconds, 1),
            "device": parameters.values.get("device", "cpu"),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "fingerprint": json.loads(fingerprint) if fingerprint else None,
        "book": bool(os.environ.get(BOOK_RUN)),
    }
    path = results_path(chapter.notebook, parameters)
    if parameters.profile == "long":
        payload["quick"] = quick_claims(path)
    atomic_json_save(payload, path)
    return path


def quick_claims(path: Path) -> list | None:
    """The claims of the ``quick`` results a ``long`` build is about to replace at ``path`` (or
    the ones a previous long build kept), for the ledger's "since quick": a long run's kept state
    at quick's length is not always quick's model (a decoder on a frozen encoder trains, in long,
    on an encoder trained four times longer). None when there is no quick result to keep."""
    try:
        before = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return before.get("claims") if before.get("profile") == "quick" else before.get("quick")
