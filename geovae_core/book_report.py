"""What the runner reports about the book: each page's time by phase (``executed/timings.json``)
and the dry run's projection of the ``paper`` profile onto one GPU (``executed/dry-run.json``),
as lines for the terminal and tables for the "Reproducing this book" page."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from . import pages
from .execution import PHASES
from .storage import atomic_json_save

DRY_RUN_STEPS = 3
GPU_FLOPS = 20e12  # assumed sustained rate of one GPU in fp32, FLOP/s
GPU_STEP_FLOOR = 3e-4  # assumed least seconds of one optimisation step on a GPU (launches, the Python loop)
ASSUMPTIONS = (
    f"{DRY_RUN_STEPS} steps per run on the CPU; one GPU assumed to sustain {GPU_FLOPS / 1e12:g} "
    f"TFLOP/s (fp32) with at least {GPU_STEP_FLOOR * 1e3:g} ms per step; runs that differ only by seed, "
    f"binarisation or (K's MLPs) latent size step together, stacked and padded to the largest latent "
    f"size (one floor per step of the group, the largest member's arithmetic for each member); step "
    f"sizes as the dry run's own search picks them (a real search may split a group by step size); "
    f"training steps only (no evaluation, hooks or figures)"
)


def machine() -> dict:
    """What the timings were taken on."""
    import torch

    return {
        "system": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def record_timing(notebook: Path, entry: dict) -> None:
    """Set the page's entry of ``executed/timings.json``."""
    timings = pages.read_json(pages.timings_file())
    timings.setdefault("pages", {})[pages.notebook_id(notebook)] = {"notebook": notebook.stem, **entry}
    timings["machine"] = machine()
    atomic_json_save(timings, pages.timings_file())


def breakdown(result: dict) -> str:
    """``12.3 s (set-up 4.0, train 8.3)``: the phases in ``PHASES``' order, then any others."""
    rank = {phase: i for i, phase in enumerate(PHASES)}
    order = sorted(result.get("phases", {}).items(), key=lambda kv: rank.get(kv[0], len(PHASES)))
    phases_ = ", ".join(f"{k} {v:.1f}" for k, v in order)
    once = f"; of which paid once per cache: {once_text(result, ', ')}" if result.get("once") else ""
    return f"{result.get('seconds', 0):.1f} s ({phases_}{once})"


def once_text(result: dict, separator: str) -> str:
    """``decoding celeba 9.8, training the mnist judge 20.1``: a page's costs paid once per cache."""
    return separator.join(f"{what} {seconds:.1f}" for what, seconds in result.get("once", {}).items())


def projection(records: list) -> dict:
    """A chapter's runs summed up: their count, the largest model, the most memory a step needs,
    and the training time projected on one GPU (``GPU_FLOPS``, ``GPU_STEP_FLOOR``) and on the
    CPU that measured them. A config run twice (same key and hooks) trains once: counted once.
    Runs that ``cache.run_many`` trains stacked on a GPU (the same ``stack`` key: they differ only
    by seed, or by a padded latent size) take their steps together: one step of the group does the
    arithmetic and holds the memory of its largest member once per member, and pays the floor once."""
    unique = list({(r["key"], tuple(r["hooks"])): r for r in records}.values())
    groups = {}
    for r in unique:
        groups.setdefault((r.get("stack", r["key"]), tuple(r["hooks"])), []).append(r)
    gpu = 0.0
    for members in groups.values():
        steps = members[0]["epochs"] * members[0]["steps_per_epoch"]
        flops = len(members) * max(m["flops_per_step"] for m in members)
        gpu += steps * max(flops / GPU_FLOPS, GPU_STEP_FLOOR)
    return {
        "runs": len(unique),
        "groups": len(groups),
        "largest_parameters": max((r["parameters"] for r in unique), default=0),
        "peak_memory_bytes": max(
            (len(members) * max(m["memory_bytes"] for m in members) for members in groups.values()), default=0
        ),
        "gpu_hours": gpu / 3600,
        "cpu_hours": sum(r["epochs"] * r["steps_per_epoch"] * r["seconds_per_step"] for r in unique) / 3600,
    }


def duration(hours: float) -> str:
    """``40 s``, ``12 min`` or ``3.5 h``."""
    seconds = hours * 3600
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min" if seconds < 3600 else f"{hours:.1f} h"


def summary_line(summary: dict) -> str:
    groups = summary.get("groups", summary["runs"])
    return (
        f"{summary['runs']} runs ({groups} stacked groups), largest {summary['largest_parameters'] / 1e6:.2f} M "
        f"parameters, peak memory {summary['peak_memory_bytes'] / 1e6:,.0f} MB; projected "
        f"{duration(summary['gpu_hours'])} on one GPU, {duration(summary['cpu_hours'])} at this CPU's measured speed"
    )


def timings_markdown() -> str:
    """The per-page time breakdown of ``executed/timings.json`` as a Markdown table, in book order."""
    timings = pages.read_json(pages.timings_file())
    if not timings.get("pages"):
        return "No timings yet: `executed/timings.json` is missing (build the book: `make book`)."
    rows = [
        "| page | profile | seconds | " + " | ".join(PHASES) + " | of which paid once per cache |",
        "|---|---|---:|" + "---:|" * len(PHASES) + "---|",
    ]
    ids = [pages.notebook_id(n) for n in pages.book_notebooks()]
    for page in [i for i in ids if i in timings["pages"]]:
        entry = timings["pages"][page]
        phase_cells = " | ".join(f"{entry.get('phases', {}).get(p, 0):.0f}" for p in PHASES)
        seconds = "failed" if entry.get("seconds") is None else f"{entry['seconds']:,.0f}"
        rows.append(f"| {page} | {entry.get('profile')} | {seconds} | {phase_cells} | {once_text(entry, '; ')} |")
    m = timings.get("machine", {})
    return "\n".join(
        rows
        + [
            "",
            f"Measured on {m.get('processor')} ({m.get('cpus')} CPUs, {m.get('system')}), "
            f"torch {m.get('torch')}, GPU: {m.get('gpu') or 'none'}.",
        ]
    )


def dry_run_markdown() -> str:
    """The dry run's projection per chapter (``executed/dry-run.json``) as a Markdown table."""
    table = pages.read_json(pages.dry_run_file())
    if not table.get("chapters"):
        return (
            "No dry run yet: `executed/dry-run.json` is missing "
            "(`python -m geovae_core.runner --profile paper --dry-run`)."
        )
    rows = [
        "| chapter | profile | runs | largest model (M parameters) | peak memory (MB) | one GPU | "
        "the measuring CPU | state |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for chapter in [pages.notebook_id(n) for n in pages.chapters() if pages.notebook_id(n) in table["chapters"]]:
        e = table["chapters"][chapter]
        state = f"failed: {e['error']}" if e.get("error") else "checked"
        rows.append(
            f"| {chapter} | {e['profile']} | {e['runs']} | {e['largest_parameters'] / 1e6:.2f} | "
            f"{e['peak_memory_bytes'] / 1e6:,.0f} | {duration(e['gpu_hours'])} | {duration(e['cpu_hours'])} | "
            f"{state.replace('|', '/')} |"
        )
    return "\n".join(rows + ["", f"Assumptions: {table.get('assumptions')}."])
