"""Measured claims: each chapter writes one JSON results file; the ledger reads the book's.

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

from .criteria import Criterion, decide, levelled_off, loss_fall
from .errors import ResultsNotWritableError
from .storage import atomic_json_save, check_writable, describe, results_dir

BOOK_RUN = "GEOVAE_BOOK_RUN"


@dataclass
class Claim:
    """One claim of a document, decided by ``criterion`` on one value per seed.

    ``runs`` are the trained runs the values rest on: when any of them had not levelled off
    (``criteria.LEVELLED_OFF``), the verdict is marked budget-limited. ``figure_label`` names
    the book figure the claim judges; ``reason`` says why a claim could not be measured.
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

    @property
    def decision(self) -> tuple:
        """(verdict, seeds passing, seeds measured)."""
        return decide(self.criterion, self.per_seed)

    @property
    def verdict(self) -> str:
        return self.decision[0]

    @property
    def not_levelled(self) -> list:
        """Labels of the runs behind this claim whose training loss had not levelled off."""
        return sorted({r.config.label() for r in self.runs if not levelled_off(r.history)})

    def summary(self) -> str:
        """ "holds (3 of 3 seeds)", with "budget-limited" when a run behind it had not levelled off."""
        verdict, passing, n = self.decision
        text = verdict if n == 0 else f"{verdict} ({passing} of {n} seed{'s' if n != 1 else ''})"
        return text + (", budget-limited" if self.not_levelled and n else "")

    def as_dict(self) -> dict:
        verdict, passing, n = self.decision
        return {
            "id": self.id,
            "figure": self.figure,
            "figure_label": self.figure_label,
            "statement": self.statement,
            "document_says": self.document_says,
            "criterion": self.criterion.as_dict(),
            "per_seed": {str(k): _number(v) for k, v in self.per_seed.items()},
            "verdict": verdict,
            "seeds_passing": passing,
            "seeds": n,
            "budget_limited": bool(self.not_levelled and n),
            "not_levelled": self.not_levelled,
            "measured": self.measured,
            "reason": self.reason,
            "values": self.values,
        }


def _number(value):
    value = float(value) if value is not None else math.nan
    return None if math.isnan(value) else value


def run_record(run) -> dict:
    """What the results file keeps of a trained run: label, length, loss and convergence."""
    history = run.history
    return {
        "label": run.config.label(),
        "key": run.config.key(),
        "epochs": len(history),
        "final_train_loss": history[-1].get("train_loss") if history else None,
        "loss_fall": _number(loss_fall(history)),
        "levelled_off": levelled_off(history),
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
    """Write one chapter's claims, numbers, parameters and the compute behind them."""
    unique = {r.config.key(): r for r in runs}.values()
    records = [run_record(r) for r in unique]
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
        "book": bool(os.environ.get(BOOK_RUN)),
    }
    path = results_path(chapter.notebook, parameters)
    atomic_json_save(payload, path)
    return path


def _chapter_order(path: Path) -> tuple:
    """N3 before N11: by the number after N, then by name."""
    digits = "".join(c for c in path.stem.split("-")[0] if c.isdigit())
    return (int(digits) if digits else 10**9, path.stem)


def load_book_results() -> tuple:
    """(results, problems): every readable results file of the book, in chapter order, and one
    line per file that could not be read or lacks what the ledger needs (the ledger shows them)."""
    folder = results_dir() / "book"
    results, problems = [], []
    for path in sorted(folder.glob("*.json"), key=_chapter_order) if folder.is_dir() else []:
        try:
            payload = json.loads(path.read_text())
            for key in ("notebook", "profile", "claims"):
                if key not in payload:
                    raise KeyError(key)
            for claim in payload["claims"]:
                for key in ("id", "statement", "verdict"):
                    if key not in claim:
                        raise KeyError(f"claims[].{key}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            problems.append(f"{path.name}: unreadable ({type(error).__name__}: {error}); skipped")
            continue
        results.append(payload)
    return results, problems


VERDICT_ORDER = ("holds", "does not hold", "mixed", "not measured")


def ledger_counts(results: list) -> dict:
    """{profile: {verdict: count, "budget-limited": count, "claims": n}}: counts never mix profiles."""
    counts = {}
    for result in results:
        row = counts.setdefault(result["profile"], {v: 0 for v in (*VERDICT_ORDER, "budget-limited", "claims")})
        for claim in result["claims"]:
            row[claim["verdict"]] = row.get(claim["verdict"], 0) + 1
            row["budget-limited"] += bool(claim.get("budget_limited"))
            row["claims"] += 1
    return counts


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def ledger_markdown(results: list, problems: list, profile: str) -> str:
    """The claims ledger as MyST Markdown: counts per profile, then one section per chapter
    (its title linking to it, the compute and parameters behind it, a row per claim linking to
    the figure it judges), and a warning row for every results file that could not be read."""
    lines = []
    for name, row in ledger_counts(results).items():
        parts = ", ".join(f"**{row[v]}** {v}" for v in VERDICT_ORDER if row[v])
        lines.append(
            f"- profile `{name}`{' (this book)' if name == profile else ''}: {row['claims']} claims: "
            f"{parts}; {row['budget-limited']} budget-limited."
        )
    for problem in problems:
        lines.append(f"- ⚠️ {problem}")
    for result in results:
        title = result.get("title") or result["notebook"]
        heading = f"{result.get('chapter', '')} · {title}".strip(" ·")
        lines += ["", f"## [{heading}]({result['notebook']}.ipynb)", ""]
        if result["profile"] != profile:
            lines.append(f"⚠️ Built with profile `{result['profile']}`, not this book's `{profile}`.\n")
        compute = result.get("compute", {})
        if compute:
            lines.append(
                f"Compute: profile `{compute.get('profile')}`, seeds `{compute.get('seeds')}`, "
                f"{compute.get('runs')} trained runs, {compute.get('trained_seconds', 0):,.0f} s of "
                f"training (summed over its runs, whenever trained), {compute.get('wall_seconds', 0):,.0f} s for its "
                f"last execution, device "
                f"`{compute.get('device')}`."
            )
        given = result.get("explicit") or []
        lines.append(
            "Parameters given: "
            + (
                ", ".join(f"`{k}` = `{result['parameters'].get(k)}`" for k in given)
                if given
                else f"none (every knob from the `{result['profile']}` profile)"
            )
            + ".\n"
        )
        lines += ["| figure | claim | criterion | per seed | verdict |", "|---|---|---|---|---|"]
        for claim in result["claims"]:
            label, figure = claim.get("figure_label"), claim.get("figure", "")
            figure = f"{{ref}}`{figure} <{label}>`" if label else figure
            seeds = (
                ", ".join(
                    f"{k}: {v:.3g}" if isinstance(v, (int, float)) else f"{k}: —"
                    for k, v in (claim.get("per_seed") or {}).items()
                )
                or "—"
            )
            verdict = claim["verdict"]
            if claim.get("seeds"):
                verdict += f" ({claim.get('seeds_passing')} of {claim['seeds']})"
            if claim.get("budget_limited"):
                verdict += ", budget-limited"
            criterion = (claim.get("criterion") or {}).get("text", "")
            statement = claim["statement"] + (f" *{claim['reason']}*" if claim.get("reason") else "")
            lines.append(
                "| " + " | ".join(_cell(x) for x in (figure, statement, criterion, seeds, f"**{verdict}**")) + " |"
            )
    return "\n".join(lines)
