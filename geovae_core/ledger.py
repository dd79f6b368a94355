"""The claims ledger: every claim of the book's results files, each verdict recomputed from its
stored criterion and values (never the stored word), and each chapter marked when its last run
failed or its code changed since its results were written."""

from __future__ import annotations

import json
from pathlib import Path

from . import pages
from .criteria import Criterion
from .storage import results_dir
from .verdicts import CANNOT_TELL, NOT_REACHED, SETTLED, UNSETTLED, Controls, Judgement, Regime

WORDS = ("holds", "does not hold", "mixed", "not measured", NOT_REACHED, CANNOT_TELL)


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
                for key in ("id", "statement", "verdict", "criterion", "per_seed"):
                    if key not in claim:
                        raise KeyError(f"claims[].{key}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            problems.append(f"{path.name}: unreadable ({type(error).__name__}: {error}); skipped")
            continue
        results.append(payload)
    return results, problems


def judgement(claim: dict) -> Judgement:
    """A stored claim's judgement, rebuilt from its criterion, values, trajectory and controls."""
    criterion = Criterion(**{k: claim["criterion"][k] for k in ("name", "measure", "comparison", "threshold", "why")})
    per_seed = {k: (float("nan") if v is None else v) for k, v in claim["per_seed"].items()}
    trajectory = {k: [(e, v) for e, v in points] for k, points in (claim.get("trajectory") or {}).items()}
    controls = claim.get("controls")
    if controls:
        controls = Controls(
            (controls["absent"]["value"], controls["absent"]["input"]),
            (controls["present"]["value"], controls["present"]["input"]),
        )
    regime = claim.get("regime")
    regime = Regime(regime["epochs"], regime["why"]) if regime else None
    return Judgement(criterion, per_seed, trajectory, claim.get("budget"), controls, regime, claim.get("epochs"))


def chapter_state(result: dict) -> str:
    """Why a chapter's results may not be current ("" when they are): its last run failed, or
    its code or source changed since they were written, or no runner wrote them."""
    notebook = next((n for n in pages.chapters() if n.stem == result["notebook"]), None)
    if notebook is None:
        return "its notebook is no longer in the book"
    if pages.failed_copy(notebook).is_file():
        return "its last run failed: these results are from the run before"
    stored = result.get("fingerprint")
    if not stored:
        return "written outside the runner"
    now = pages.fingerprint(notebook, result["profile"])
    changed = [part for part in ("source", "code") if stored.get(part) != now.get(part)]
    return f"its {' and '.join(changed)} changed since these results were written" if changed else ""


def ledger_counts(results: list) -> dict:
    """{profile: {word: count, "settled": n, "unsettled": n, "claims": n}}: counts never mix profiles."""
    counts = {}
    for result in results:
        row = counts.setdefault(result["profile"], {w: 0 for w in (*WORDS, SETTLED, UNSETTLED, "claims")})
        for claim in result["claims"]:
            judged = judgement(claim)
            row[judged.word] = row.get(judged.word, 0) + 1
            if judged.standing is not None:
                row[judged.standing.state] += 1
            row["claims"] += 1
    return counts


def since_quick(result: dict) -> list:
    """For a ``long`` chapter, [(claim id, its verdict in the ``quick`` build the long build
    replaced, its verdict now)], both recomputed from their stored values
    (``results.quick_claims``); [] for other profiles or when no quick build was there."""
    if result["profile"] != "long" or not result.get("quick"):
        return []
    before = {claim["id"]: judgement(claim).word for claim in result["quick"]}
    return [(c["id"], before.get(c["id"], "not measured"), judgement(c).word) for c in result["claims"]]


def _since_quick_line(rows: list) -> str:
    changed = [f"`{claim}` ({before} → {now})" for claim, before, now in rows if before != now]
    return (
        "Since this chapter's `quick` build (its results, kept when the long build replaced them): "
        f"**{len(changed)}** of {len(rows)} verdicts changed" + (": " + "; ".join(changed) if changed else "") + "."
    )


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _seeds(values: dict) -> str:
    return ", ".join(f"{k}: {v:.3g}" if isinstance(v, int | float) else f"{k}: —" for k, v in values.items()) or "—"


def ledger_markdown(results: list, problems: list, profile: str) -> str:
    """The ledger as MyST Markdown: counts per profile (verdicts and whether they stand), then one
    section per chapter (its title linking to it, the compute behind it, any reason its results
    may not be current, a row per claim linking to its trajectory figure), and a warning for
    every results file that could not be read or whose stored verdict its own values contradict."""
    lines = []
    for name, row in ledger_counts(results).items():
        parts = ", ".join(f"**{row[w]}** {w}" for w in WORDS if row[w])
        verdicts = row[SETTLED] + row[UNSETTLED]
        shares = (
            f" ({row[SETTLED] / verdicts:.0%} of the verdicts, {row[SETTLED] / row['claims']:.0%} of the claims)"
            if verdicts
            else ""
        )
        lines.append(
            f"- profile `{name}`{' (this book)' if name == profile else ''}: {row['claims']} claims: {parts}; "
            f"of the verdicts, **{row[SETTLED]}** settled and **{row[UNSETTLED]}** unsettled{shares}."
        )
    lines += [f"- ⚠️ {problem}" for problem in problems]
    for result in results:
        title = result.get("title") or result["notebook"]
        heading = f"{result.get('chapter', '')} · {title}".strip(" ·")
        lines += ["", f"## [{heading}]({result['notebook']}.ipynb)", ""]
        if result["profile"] != profile:
            lines.append(f"⚠️ Built with profile `{result['profile']}`, not this book's `{profile}`.\n")
        state = chapter_state(result)
        if state:
            lines.append(f"⚠️ Not current: {state}.\n")
        compute = result.get("compute", {})
        if compute:
            lines.append(
                f"Compute: profile `{compute.get('profile')}`, seeds `{compute.get('seeds')}`, "
                f"{compute.get('runs')} trained runs, {compute.get('trained_seconds', 0):,.0f} s of training "
                f"(summed over its runs, whenever trained), {compute.get('wall_seconds', 0):,.0f} s for its last "
                f"execution, device `{compute.get('device')}`."
            )
        if since_quick(result):
            lines.append(_since_quick_line(since_quick(result)) + "\n")
        given = result.get("explicit") or []
        knobs = ", ".join(f"`{k}` = `{result['parameters'].get(k)}`" for k in given)
        everything = f"none (every knob from the `{result['profile']}` profile)"
        lines.append(f"Parameters given: {knobs or everything}.\n")
        lines += [
            "| figure | claim | criterion | per seed | at half the budget | verdict | standing |",
            "|---|---|---|---|---|---|---|",
        ]
        chapter_label = f"{result.get('chapter', '').lower()}-claims"
        for claim in result["claims"]:
            lines.append(_row(claim, chapter_label))
    return "\n".join(lines)


def _row(claim: dict, trajectories: str) -> str:
    judged = judgement(claim)
    word, (_, passing, n) = judged.word, judged.decision
    verdict = word if word in (NOT_REACHED, CANNOT_TELL) or not n else f"{word} ({passing} of {n})"
    if claim.get("verdict") != word:
        verdict += f" ⚠️ the results file says '{claim.get('verdict')}'"
    state = judged.standing
    standing = "—" if state is None else state.state + (f", moving {state.moves}" if state.moves else "")
    if state is not None and state.crosses_at:
        standing += f" (crosses at about {state.crosses_at:,.0f} epochs)"
    if claim.get("trajectory"):
        standing += f" ({{ref}}`trajectory <{trajectories}>`)"
    label, figure = claim.get("figure_label"), claim.get("figure", "")
    figure = f"{{ref}}`{figure} <{label}>`" if label else figure
    statement = claim["statement"] + (f" *{claim['reason']}*" if claim.get("reason") else "")
    cells = (figure, statement, claim["criterion"].get("text", ""), _seeds(claim["per_seed"]))
    cells += (judged.at_half if claim.get("trajectory") else "—", f"**{verdict}**", standing)
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def criteria_markdown(results: list, named: dict) -> str:
    """Every criterion the book's claims use (the named ones first, then the chapters' own), with
    its measure, threshold and why, and the controls each claim ran it on: the value on an input
    without the effect (it must fail) and on one with it (it must pass), and whether it told them apart."""
    used = {}
    for result in results:
        for claim in result["claims"]:
            criterion, controls = claim["criterion"], claim.get("controls")
            entry = used.setdefault(criterion["name"], {"criterion": criterion, "controls": []})
            if controls:
                entry["controls"].append((claim["id"], controls))
    for name, c in named.items():
        used.setdefault(name, {"criterion": c.as_dict(), "controls": []})
    lines = ["| criterion | passes when | why this threshold | controls in this book |", "|---|---|---|---|"]
    for name, entry in used.items():
        c = entry["criterion"]
        shown = []
        for claim_id, controls in entry["controls"]:
            absent, present = controls["absent"], controls["present"]
            tells = "tells" if controls.get("tells") else "**cannot tell**"
            shown.append(
                f"{claim_id}: without the effect ({absent['input']}) {_value(absent['value'])}, with it "
                f"({present['input']}) {_value(present['value'])}: {tells}"
            )
        text = "<br>".join(_cell(s) for s in shown) or "not used in this book's claims"
        lines.append(f"| {name} | {_cell(c['text'])} | {_cell(c['why'])} | {text} |")
    return "\n".join(lines)


def _value(value) -> str:
    return "—" if value is None else f"{value:.3g}"
