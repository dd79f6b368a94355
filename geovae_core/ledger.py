"""The claims ledger: every claim of the book's results files, each verdict recomputed from its
stored criterion and values (never the stored word), and each chapter marked when its last run
failed, its code changed since its results were written, its results file cannot be used, or it
has none (not built)."""

from __future__ import annotations

import json
from pathlib import Path

from . import pages
from .criteria import Criterion
from .storage import results_dir
from .verdicts import CANNOT_TELL, DID_NOT_TRAIN, NOT_REACHED, SETTLED, UNSETTLED, Controls, Judgement, Regime

WORDS = ("holds", "does not hold", "mixed", "not measured", NOT_REACHED, DID_NOT_TRAIN, CANNOT_TELL)


def _chapter_order(path: Path) -> tuple:
    """N3 before N11: by the number after N, then by name."""
    digits = "".join(c for c in path.stem.split("-")[0] if c.isdigit())
    return (int(digits) if digits else 10**9, path.stem)


NOT_BUILT = "not built"  # a chapter of the book with no results file


def _field(mapping: dict, key: str, where: str):
    """``mapping[key]``, or KeyError naming the field (``claims[0].per_seed``)."""
    if key not in mapping:
        raise KeyError(f"{where}.{key}" if where else key)
    return mapping[key]


def _need(ok: bool, where: str, value, what: str) -> None:
    """TypeError "<where> is <value>, not <what>" unless ``ok``."""
    if not ok:
        shown = repr(value)
        raise TypeError(f"{where} is {shown if len(shown) <= 40 else shown[:37] + '...'}, not {what}")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_value(value) -> bool:
    """A stored measurement: a number, or null (not measured)."""
    return value is None or _is_number(value)


def _is_trajectory(points) -> bool:
    """One seed's measure along training: [[epochs > 0, number or null], ...]."""
    return isinstance(points, list) and all(
        isinstance(p, list) and len(p) == 2 and _is_number(p[0]) and p[0] > 0 and _is_value(p[1]) for p in points
    )


def _is_control(control) -> bool:
    """A stored control (``verdicts.Controls.as_dict``): its input (text) and {seed: number or null}."""
    return (
        isinstance(control, dict)
        and isinstance(control.get("input"), str)
        and isinstance(control.get("per_seed"), dict)
        and all(map(_is_value, control["per_seed"].values()))
    )


def _is_text_pair(pair) -> bool:
    return isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)


def _check_claim(claim, where: str) -> None:
    """Raise KeyError, TypeError or ValueError naming the first field of a stored claim that the
    ledger's verdicts, rows and criteria could not use."""
    _need(isinstance(claim, dict), where, claim, "an object")
    for key in ("id", "statement", "verdict"):
        _need(isinstance(_field(claim, key, where), str), f"{where}.{key}", claim[key], "text")
    criterion, at = _field(claim, "criterion", where), f"{where}.criterion"
    _need(isinstance(criterion, dict), at, criterion, "an object")
    for key in ("name", "measure", "why", "text"):
        _need(isinstance(_field(criterion, key, at), str), f"{at}.{key}", criterion[key], "text")
    _need(_is_number(_field(criterion, "threshold", at)), f"{at}.threshold", criterion["threshold"], "a number")
    try:  # a comparison the criteria know
        Criterion(**{k: _field(criterion, k, at) for k in ("name", "measure", "comparison", "threshold", "why")})
    except ValueError as error:
        raise ValueError(f"{at}: {error}") from None
    per_seed = _field(claim, "per_seed", where)
    _need(
        isinstance(per_seed, dict) and all(map(_is_value, per_seed.values())),
        f"{where}.per_seed",
        per_seed,
        "{seed: number or null}",
    )
    trajectory = claim.get("trajectory") or {}
    _need(
        isinstance(trajectory, dict) and all(map(_is_trajectory, trajectory.values())),
        f"{where}.trajectory",
        trajectory,
        "{seed: [[epochs > 0, number or null], ...]}",
    )
    for key in ("budget", "epochs"):
        _need(_is_value(claim.get(key)), f"{where}.{key}", claim.get(key), "a number or null")
    regime = claim.get("regime")
    if regime:
        _need(
            isinstance(regime, dict) and _is_number(regime.get("epochs")) and isinstance(regime.get("why"), str),
            f"{where}.regime",
            regime,
            '{"epochs": number, "why": text} or null',
        )
    controls = claim.get("controls")
    if controls:
        _need(isinstance(controls, dict), f"{where}.controls", controls, "an object or null")
        for side in ("absent", "present"):
            control = _field(controls, side, f"{where}.controls")
            _need(_is_control(control), f"{where}.controls.{side}", control, '{"input": text, "per_seed": {...}}')
    untrained = claim.get("did_not_train") or []
    _need(
        isinstance(untrained, list) and all(_is_text_pair(pair) for pair in untrained),
        f"{where}.did_not_train",
        untrained,
        "[[run, why], ...]",
    )


def _check_results(payload) -> None:
    """Raise KeyError, TypeError or ValueError naming the first field of a results file that the
    ledger could not use: a file that is JSON but holds a field of the wrong kind fails here, alone."""
    _need(isinstance(payload, dict), "the file", payload, "an object")
    for key in ("notebook", "profile"):
        _need(isinstance(_field(payload, key, ""), str), key, payload[key], "text")
    for key in ("title", "chapter"):
        _need(isinstance(payload.get(key, ""), str), key, payload.get(key), "text")
    for key in ("claims", "quick"):  # quick: the quick build's claims a long build keeps
        claims = _field(payload, key, "") if key == "claims" else payload.get(key) or []
        _need(isinstance(claims, list), key, claims, "a list")
        for number, claim in enumerate(claims):
            _check_claim(claim, f"{key}[{number}]")
    _need(isinstance(payload.get("parameters", {}), dict), "parameters", payload.get("parameters"), "an object")
    explicit = payload.get("explicit") or []
    _need(isinstance(explicit, list) and all(isinstance(k, str) for k in explicit), "explicit", explicit, "names")
    compute = payload.get("compute") or {}
    _need(
        isinstance(compute, dict) and all(_is_number(compute.get(k, 0)) for k in ("trained_seconds", "wall_seconds")),
        "compute",
        compute,
        "an object whose seconds are numbers",
    )
    fingerprint = payload.get("fingerprint")
    _need(fingerprint is None or isinstance(fingerprint, dict), "fingerprint", fingerprint, "an object or null")


def load_book_results() -> tuple:
    """(results, problems): every usable results file of the book, in chapter order, and one line
    per file that could not be read or holds a field of the wrong kind (which file, which field,
    what is wrong); the ledger shows them, and the other chapters as usual."""
    folder = results_dir() / "book"
    results, problems = [], []
    for path in sorted(folder.glob("*.json"), key=_chapter_order) if folder.is_dir() else []:
        try:
            payload = json.loads(path.read_text())
            _check_results(payload)
        except (OSError, ValueError, KeyError, TypeError) as error:
            problems.append(f"{path.name}: unreadable ({type(error).__name__}: {error}); its claims are left out")
            continue
        results.append(payload)
    return results, problems


def not_built() -> list:
    """The notebooks of the book's chapters that have no results file in ``results/book``."""
    folder = results_dir() / "book"
    return [n.stem for n in pages.chapters() if not (folder / f"{n.stem}.json").is_file()]


def judgement(claim: dict) -> Judgement:
    """A stored claim's judgement, rebuilt from its criterion, values, trajectory and controls."""
    criterion = Criterion(**{k: claim["criterion"][k] for k in ("name", "measure", "comparison", "threshold", "why")})
    per_seed = {k: (float("nan") if v is None else v) for k, v in claim["per_seed"].items()}
    trajectory = {k: [(e, v) for e, v in points] for k, points in (claim.get("trajectory") or {}).items()}
    controls = Controls.from_dict(claim["controls"]) if claim.get("controls") else None
    regime = claim.get("regime")
    regime = Regime(regime["epochs"], regime["why"]) if regime else None
    untrained = [tuple(pair) for pair in claim.get("did_not_train") or []]
    return Judgement(
        criterion, per_seed, trajectory, claim.get("budget"), controls, regime, claim.get("epochs"), untrained
    )


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


def ledger_counts(results: list, profile: str) -> dict:
    """{profile: {word: count, "settled": n, "unsettled": n, "claims": n, "not built": n}}: counts
    never mix profiles; the book's chapters with no results file count as not built in ``profile``
    (this book's)."""
    counts = {}

    def row_of(name: str) -> dict:
        return counts.setdefault(name, {w: 0 for w in (*WORDS, SETTLED, UNSETTLED, "claims", NOT_BUILT)})

    missing = not_built()
    if missing:
        row_of(profile)[NOT_BUILT] = len(missing)
    for result in results:
        row = row_of(result["profile"])
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
    return ", ".join(f"{v:.3g}" if isinstance(v, int | float) else "—" for v in values.values()) or "—"


_SYMBOLS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def ledger_markdown(results: list, problems: list, profile: str) -> str:
    """The ledger as MyST Markdown: counts per profile (verdicts and whether they stand, chapters
    not built), then one section per chapter (its title linking to it, the compute behind it, any
    reason its results may not be current, a row per claim linking to its trajectory figure), and a
    warning for every results file that could not be read or whose stored verdict its own values
    contradict, and for every chapter not built."""
    lines = []
    for name, row in ledger_counts(results, profile).items():
        parts = ", ".join(f"**{row[w]}** {w}" for w in WORDS if row[w])
        verdicts = row[SETTLED] + row[UNSETTLED]
        shares = (
            f" ({row[SETTLED] / verdicts:.0%} of the verdicts, {row[SETTLED] / row['claims']:.0%} of the claims)"
            if verdicts
            else ""
        )
        claims = f"{row['claims']} claims" + (f": {parts}" if parts else "")
        unbuilt = f" **{row[NOT_BUILT]}** of the book's chapters not built." if row[NOT_BUILT] else ""
        lines.append(
            f"- profile `{name}`{' (this book)' if name == profile else ''}: {claims}; of the verdicts, "
            f"**{row[SETTLED]}** settled and **{row[UNSETTLED]}** unsettled{shares}.{unbuilt}"
        )
    lines += [f"- ⚠️ {problem}" for problem in problems]
    lines += [
        f"- ⚠️ {notebook}: {NOT_BUILT} (no results file {notebook}.json); build it with "
        f"`python -m geovae_core.runner --only {notebook.split('-')[0]}`"
        for notebook in not_built()
    ]
    lines += ["", overview_markdown(results)]
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


OVERVIEW = ("holds", "does not hold", "mixed")


def overview_markdown(results: list) -> str:
    """One row per chapter, to be taken in at a glance: how many of its claims hold, do not hold,
    are mixed or have no verdict (not measured, not reached, runs did not train, criterion cannot
    tell), how many verdicts stand settled, and whether its rows are current."""
    lines = [
        "| chapter | claims | hold | do not hold | mixed | no verdict | settled | current |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for result in results:
        words = [judgement(claim) for claim in result["claims"]]
        counts = [sum(j.word == w for j in words) for w in OVERVIEW]
        settled = sum(j.standing is not None and j.standing.state == SETTLED for j in words)
        name = result.get("chapter") or result["notebook"]
        current = "no: " + chapter_state(result) if chapter_state(result) else "yes"
        cells = (f"[{name}]({result['notebook']}.ipynb)", len(words), *counts, len(words) - sum(counts))
        lines.append("| " + " | ".join(str(c) for c in (*cells, settled, _cell(current))) + " |")
    return "\n".join(lines)


def _row(claim: dict, trajectories: str) -> str:
    judged = judgement(claim)
    word, (_, passing, n) = judged.word, judged.decision
    verdict = word if word in (NOT_REACHED, CANNOT_TELL, DID_NOT_TRAIN) or not n else f"{word} ({passing} of {n})"
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
    criterion = claim["criterion"]
    short = f"*{criterion['name']}* ({_SYMBOLS[criterion['comparison']]} {criterion['threshold']:g})"
    cells = (figure, statement, short, _seeds(claim["per_seed"]))
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
                f"{claim_id}: without the effect ({absent['input']}) {_values(absent['per_seed'])}, with it "
                f"({present['input']}) {_values(present['per_seed'])}: {tells}"
            )
        text = "<br>".join(_cell(s) for s in shown) or "not used in this book's claims"
        lines.append(f"| {name} | {_cell(c['text'])} | {_cell(c['why'])} | {text} |")
    return "\n".join(lines)


def _values(per_seed: dict) -> str:
    """Values by seed: "0.12, 0.15, 0.11" ("—" for one not measured)."""
    return ", ".join("—" if v is None else f"{v:.3g}" for v in per_seed.values()) or "—"
