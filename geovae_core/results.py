"""Measured claims: each notebook writes one JSON results file; the ledger reads them all."""
from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field

import torch

from .storage import atomic_json_save, results_dir

VERDICTS = {True: "holds", False: "does not hold", None: "not measured"}


def verdict(holds: bool | None) -> str:
    """``holds`` / ``does not hold``, or ``not measured`` when the measurement was impossible."""
    return VERDICTS[None if holds is None else bool(holds)]


@dataclass
class Claim:
    """One claim of a document, what was measured, and the verdict."""

    id: str
    figure: str
    statement: str
    document_says: str
    measured: str
    verdict: str
    values: dict = field(default_factory=dict)


def save_results(notebook: str, parameters, claims: list, numbers: dict) -> str:
    """Write ``results/<notebook>.json``: parameters, profile, claims and key numbers."""
    payload = {
        "notebook": notebook,
        "profile": parameters.profile,
        "parameters": parameters.as_dict(),
        "claims": [asdict(c) for c in claims],
        "numbers": numbers,
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "device": parameters.values.get("device", "cpu")},
    }
    path = results_dir() / f"{notebook}.json"
    atomic_json_save(payload, path)
    return str(path)


def _chapter_order(name: str) -> tuple:
    """N3 before N11: by the number after N, then by name."""
    digits = "".join(c for c in name.split("-")[0] if c.isdigit())
    return (int(digits) if digits else 10**9, name)


def load_results() -> list:
    """Every results file, in chapter order (N1, N2, ..., N11)."""
    folder = results_dir()
    paths = sorted(folder.glob("*.json"), key=lambda p: _chapter_order(p.stem)) if folder.is_dir() else []
    return [json.loads(p.read_text()) for p in paths]
