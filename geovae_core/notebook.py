"""What every chapter notebook does first and last, in one place.

    chapter = ChapterPage(n1.CHAPTER)    # set-up cell: plot style, clock
    P = chapter.parameters(globals())    # after the parameters cell: resolve, check, show
    chapter.figure("n1-fig10", fig)      # glue a figure for a numbered {glue:figure}
    chapter.finish(claims, numbers, runs)  # results file, glue, claims table and plot

A chapter executed for the book (the runner sets ``results.BOOK_RUN``) glues its figures
without showing them twice; run anywhere else (JupyterLab, papermill by hand, nbval) it
also shows each figure where it is made.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from html import escape

import matplotlib
import matplotlib.pyplot as plt

from . import dryrun
from .cache import run_many
from .chapters import Chapter
from .criteria import NAMED
from .geometry import SMOOTH_SHARE
from .plotting import claims_figure
from .profiles import parameters_from
from .results import BOOK_RUN, check_results_writable, results_path, save_results
from .storage import REPO_ROOT
from .verdicts import Controls

DPI = 90
# The stages a claim is measured at: the whole budget, its half and its quarter. The settled rule
# (verdicts.standing) reads the last half and the last doubling; the quarter shows the direction
# in the trajectory figure. Earlier kept states stay in the cache, unscored (each stage costs a
# chapter's whole measuring once more).
FOLLOWED_STAGES = 3


def style() -> None:
    """The book's one plot style: seaborn's white grid, small type, a fixed resolution."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.85)
    matplotlib.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "axes.titlesize": 10, "image.cmap": "gray"})


def book_run() -> bool:
    return bool(os.environ.get(BOOK_RUN))


def _display(*objects) -> None:
    from IPython.display import display

    display(*objects)


def _html(text: str):
    from IPython.display import HTML

    return HTML(text)


def _markdown(text: str):
    from IPython.display import Markdown

    return Markdown(text)


def glue(name: str, value) -> None:
    """``myst_nb.glue`` without displaying; a value's text is what ``{glue:text}`` shows."""
    from myst_nb import glue as myst_glue

    myst_glue(name, value, display=False)


_NUMBER_WORDS = "one two three four five six seven eight nine ten".split()


def share_in_words(share: float) -> str:
    """A share as prose quotes it: 0.9 -> "nine in ten" (tenths; otherwise a percentage)."""
    tenths = round(share * 10)
    if abs(share * 10 - tenths) < 1e-9 and 1 <= tenths <= 10:
        return f"{_NUMBER_WORDS[tenths - 1]} in ten"
    return f"{share:.0%}"


def glue_thresholds() -> None:
    """Glue every named criterion's threshold (``criterion-<name>``, its words joined by hyphens,
    e.g. ``criterion-recognised`` is 0.9) and the share of paths that must be smooth
    (``smooth-share``: "nine in ten"), so that a notebook's prose quotes them from
    ``criteria`` and never by hand."""
    for name, criterion in NAMED.items():
        glue(f"criterion-{name.replace(' ', '-')}", f"{criterion.threshold:g}")
    glue("smooth-share", share_in_words(SMOOTH_SHARE))


class ChapterPage:
    """A chapter as its notebook runs it: set-up and close (see the module docstring)."""

    def __init__(self, chapter: Chapter):
        self.chapter = chapter
        self.started = time.perf_counter()
        self.parameters_ = None
        style()
        glue_thresholds()

    def parameters(self, namespace: dict):
        """Resolve the notebook's parameters cell (its globals), reject unknown injected names,
        and show the parameters table and how to run this chapter."""
        self.parameters_ = parameters_from(self.chapter.id, self.chapter.settings, namespace)
        check_results_writable(results_path(self.chapter.notebook, self.parameters_))
        _display(_markdown(self.parameters_.markdown()), _html(self.run_box()))
        return self.parameters_

    def run_box(self) -> str:
        """A "Run this chapter" box: the papermill command that reproduces this page, the chapter's
        main knobs and its source notebook to download, as HTML, which the book and JupyterLab show
        alike (the notebook travels in the link itself)."""
        P, notebook = self.parameters_, self.chapter.notebook
        given = "".join(_cli(k, P.values[k]) for k in sorted(P.explicit))
        main = ", ".join(
            f"<code>{k}</code> = <code>{escape(str(P.values[k]))}</code>"
            for k in self.chapter.settings.main
            if k in P.values
        )
        command = f"papermill {self.chapter.source} out.ipynb -p profile {P.profile}{given}"
        source = base64.b64encode((REPO_ROOT / self.chapter.source).read_bytes()).decode()
        return "".join(
            [
                '<div class="admonition tip geovae-run"><p class="admonition-title">Run this chapter</p>',
                f'<pre class="geovae-command">{escape(command)}</pre>',
                f"<p>Main knobs here: {main}; every knob is in the table above (<code>-p name value</code> sets one, ",
                '<code>-y "name: [1, 2]"</code> a list).</p>',
                "<p>Or rebuild this page for the book: ",
                f"<code>python -m geovae_core.runner --only {self.chapter.id} --force</code>.</p>",
                f'<p><a download="{notebook}.ipynb" href="data:application/x-ipynb+json;base64,{source}">',
                "Download the source notebook</a></p></div>",
            ]
        )

    def settings(self, rows, *documents: str) -> None:
        """Show the "document's setting / ours" table: rows of (setting, each document's, ours);
        ``documents`` name the documents' columns (P by default)."""
        documents = documents or ("P",)
        lines = [
            "| setting | " + " | ".join(documents) + f" | this run ({self.parameters_.profile}) |",
            "|---" * (len(documents) + 2) + "|",
        ]
        lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in rows]
        _display(_markdown("\n".join(lines)))

    def figure(self, label: str, fig) -> None:
        """Glue ``fig`` as ``label`` for a captioned, numbered ``{glue:figure}``; show it too
        unless this is the book's run (where the figure directive shows it)."""
        glue(label, fig)
        if not book_run():
            _display(fig)
        plt.close(fig)

    def follow(self, measures, experiments: dict) -> Followed:
        """Each claim's measure at every state the cache kept of ``experiments`` (a config, or
        ``(config, hooks)``, by key; trained before, so nothing trains here): ``measures(runs,
        final)`` takes the runs at one stage, by the same keys, and returns {claim id: {seed:
        value}}. Stage k holds each run after its epochs // 2**k (the whole budget first, then
        half of it, a quarter: ``FOLLOWED_STAGES``), as far as every run has a distinct kept state;
        ``final`` is False for the earlier stages, which a chapter may score on a fixed subset (it
        says so)."""
        if dryrun.steps():  # a dry run builds and steps the runs; it measures nothing
            return Followed([{}])
        pairs = {k: v if isinstance(v, tuple) else (v, None) for k, v in experiments.items()}
        depth = min(FOLLOWED_STAGES, *(config.epochs.bit_length() for config, _ in pairs.values()))
        stages = []
        for k in range(depth):
            at = {key: (config.replace(epochs=config.epochs >> k), hooks) for key, (config, hooks) in pairs.items()}
            stages.append(measures(run_many(at, progress=False), k == 0))
        return Followed(stages)

    def train_and_follow(self, measuring, experiments: dict) -> tuple:
        """Train every run of ``experiments`` (through the cache) and follow each claim's measure
        along their training (``follow``): (the runs by key, ``Followed``)."""
        return run_many(experiments), self.follow(measuring, experiments)

    def judge_and_finish(self, claims_of, measuring, runs: dict, followed, numbers=None, shown=None, **more) -> list:
        """Every claim judged and the page finished: the controls (``controls``), the claims
        (``claims_of(parameters, followed, measuring, controls, runs, **more)``, the chapter
        module's ``claims``), then ``finish`` with ``numbers`` and the runs ``shown`` in the compute
        line (every run of ``runs`` by default). Returns the claims."""
        controls = self.controls(measuring, runs)
        claims = claims_of(self.parameters_, followed, measuring, controls, runs, **more)
        self.finish(claims, numbers, runs.values() if shown is None else shown)
        return claims

    def headline(self, claims: list, runs) -> None:
        """Print ``headline_text``: the numbers nbval keeps this chapter to."""
        print(headline_text(claims, runs))

    def controls(self, measuring, runs: dict) -> dict:
        """Every claim's controls, {claim id: ``verdicts.Controls``}: ``measuring.controls(runs,
        seed)`` for each seed of this run, so that each control is computed from that seed's models
        or draw of real data."""
        return Controls.over_seeds({seed: measuring.controls(runs, seed) for seed in self.parameters_.seeds})

    def finish(self, claims: list, numbers: dict | None = None, runs=()) -> None:
        """Save the results file, glue the chapter's numbers and verdicts, and show the claims
        (a block each, and their trajectories) and the compute behind them."""
        cid = self.chapter.id.lower()
        numbers = dict(numbers or {})
        wall = time.perf_counter() - self.started
        path = save_results(self.chapter, self.parameters_, claims, numbers, list(runs), wall)
        records = {r.config.key(): r for r in runs}.values()
        trained = sum(sum(row.get("seconds", 0.0) for row in r.history) for r in records)
        compute = (
            f"profile `{self.parameters_.profile}`, seeds `{self.parameters_.values.get('seeds', '—')}`, "
            f"{len(records)} trained runs ({sum(not r.from_cache for r in records)} trained in this "
            f"execution), {trained:,.0f} s of training (summed over its runs), {wall:,.0f} s for this "
            f"execution, device `{self.parameters_.values.get('device', 'cpu')}`"
        )
        numbers.update(
            {f"{cid}_profile": self.parameters_.profile, f"{cid}_seconds": round(wall, 1), f"{cid}_compute": compute}
        )
        for key, value in numbers.items():
            glue(key, value)
        glue(f"{cid}_verdicts", _markdown(verdict_list(claims)))
        glue(f"{cid}_criteria", _markdown(criteria_list(claims)))
        glue(f"{cid}_compute_md", _markdown(f"{compute}; results file `{path.name}`."))
        _display(_markdown(claims_markdown(claims)))
        if any(c.per_seed for c in claims):
            self.figure(f"{cid}-claims", claims_figure(claims))


def headline_text(claims: list, runs) -> str:
    """What nbval compares, printed by a chapter's last cell (marked ``# NBVAL_CHECK_OUTPUT``): the
    final losses and their terms of the first seed's runs, every claim's verdict, and its measure
    per seed where its runs trained. A measured number is printed ``≈`` and three significant
    digits: ``tools/nbval_numbers.py`` compares it with the stored one within 1% (the last digit
    moves with the CPU's kernels and threads: N6's test KL read 0.926 and 0.925), the rest of the
    text exactly. The measures of runs that did not train (most of the smoke profile's) are left
    out: judged on barely trained models, they moved by up to 15% between AVX-512 and AVX2
    kernels (N1's 0.57 and 0.65), where the losses agreed to 0.1%."""
    records = {r.config.key(): r for r in runs}.values()
    first = min((r.config.seed for r in records), default=0)
    lines = []
    for r in sorted((r for r in records if r.config.seed == first), key=lambda r: r.config.label()):
        final = r.history[-1]
        terms = ", ".join(f"{k} {_measured(v)}" for k, v in final.items() if k.startswith(("train_", "test_")))
        lines.append(f"{r.config.label()}, {len(r.history)} epochs: {terms}")
    for c in claims:
        values = ", ".join(f"{k}: {_measured(v)}" for k, v in c.per_seed.items()) or "—"
        lines.append(f"{c.id}: {'' if c.untrained else values + ' → '}{c.verdict}")
    return "\n".join(lines)


def _measured(value) -> str:
    """A measured number as nbval's tolerant comparison reads it: ``≈`` and three significant digits."""
    try:
        return f"≈{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)


@dataclass
class Followed:
    """Claims' measures along training: ``stages`` [{claim id: {seed: value}}], stage k after
    each run's epochs // 2**k (the whole budget first)."""

    stages: list

    @property
    def final(self) -> dict:
        """{claim id: {seed: value}} at the whole budget: what the verdicts are decided on."""
        return self.stages[0]

    def trajectory(self, claim_id: str, epochs: int) -> dict:
        """{seed: [(epochs, value), ...]} of one claim in ascending epochs, its runs' length
        being ``epochs`` (stage k is after epochs // 2**k)."""
        out = {}
        for k in reversed(range(len(self.stages))):
            for seed, value in self.stages[k].get(claim_id, {}).items():
                out.setdefault(seed, []).append((max(epochs >> k, 1), value))
        return out


def _cli(name: str, value) -> str:
    """papermill's option for one knob: ``-p`` passes text, so a list goes as YAML with ``-y``."""
    if isinstance(value, list | tuple):
        return f' -y "{name}: {list(value)}"'
    text = str(value)
    return f' -p {name} "{text}"' if " " in text else f" -p {name} {text}"


def criteria_list(claims: list) -> str:
    """Each criterion the chapter's claims use, once, as a Markdown list: its name, what passes
    and why (the prose's thresholds, glued from the criteria themselves)."""
    seen = {c.criterion.name: c.criterion for c in claims}
    return "\n".join(f"- *{c.name}*: {c.describe()}. {c.why}" for c in seen.values())


def verdict_list(claims: list) -> str:
    """Every claim of a chapter with its verdict, as a Markdown list (the "In short" section)."""
    return "\n".join(f"- {c.statement} **{c.summary()}**" + (f" ({c.reason})" if c.reason else "") for c in claims)


def claims_markdown(claims: list) -> str:
    """Each claim as a short block: the figure and statement with its verdict, then the
    document's words, the criterion and why, its controls, the per-seed values, whether the
    verdict stands and why, what else was measured, and the runs whose loss had not levelled off."""
    blocks = []
    for c in claims:
        figure = f"{{ref}}`{c.figure} <{c.figure_label}>`" if c.figure_label else c.figure
        seeds = ", ".join(f"seed {k}: {_short(v)}" for k, v in c.per_seed.items()) or "—"
        judgement = c.judgement
        lines = [
            f"**{figure}: {c.statement}** → **{c.summary()}**",
            "",
            f"- The document: {c.document_says}",
            f"- Criterion ({c.criterion.name}): {c.criterion.describe()}. Why: {c.criterion.why}",
        ]
        if c.controls is not None:
            lines.append(controls_line(c.controls, c.criterion))
        lines.append(f"- Per seed: {seeds}")
        if judgement.regime is not None and judgement.word == "not reached at this budget":
            lines.append(f"- Not reached: {judgement.regime.why}; these runs trained {judgement.epochs:g} epochs.")
        state = judgement.standing
        if state is not None and c.trajectory:
            budget = f"the documents' {c.budget:g} epochs" if c.budget else "no stated budget"
            lines.append(
                f"- Along training (kept states at {', '.join(str(e) for e, _ in next(iter(c.trajectory.values())))} "
                f"epochs; carried to {budget}): at half the budget it was **{judgement.at_half}**; "
                f"{state.state}" + (f": {state.detail}" if state.detail else "") + "."
            )
        if judgement.untrained:
            lines.append(
                "- Runs that did not train (no verdict rests on them): "
                + "; ".join(f"{label}: {why}" for label, why in judgement.untrained)
                + "."
            )
        if c.measured or c.reason:
            lines.append(f"- Also measured: {c.measured}" if c.measured else f"- Not measured: {c.reason}")
        stalled = c.not_levelled
        if stalled and c.per_seed:
            total = len({r.config.key() for r in c.runs})
            lines.append(
                f"- Loss diagnostic: {len(stalled)} of {total} runs behind it had not levelled off "
                f"({'; '.join(f'{label}: {why}' for label, why in stalled[:3])}"
                f"{'; …' if len(stalled) > 3 else ''}). This says how far training went, not whether the "
                f"verdict stands."
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def controls_line(controls, criterion) -> str:
    """The claim box's line on its controls: each input, its value per seed, and whether the
    criterion told them apart in every seed (else which seed and side came out wrong)."""
    absent, present = controls.absent, controls.present
    values = lambda side: ", ".join(f"{_short(v)}" for v in side[1].values())  # noqa: E731
    failures = controls.failures(criterion)
    told = (
        "it tells them apart in every seed"
        if not failures
        else "**it cannot tell them apart** (" + "; ".join(failures) + ")"
    )
    return (
        f"- Controls, by seed: without the effect ({absent[0]}) {values(absent)}, must fail; "
        f"with it ({present[0]}) {values(present)}, must pass: {told}."
    )


def _short(value) -> str:
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return str(value)
