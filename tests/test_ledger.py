"""The ledger cannot be fooled: it recomputes every verdict from the stored criterion and values,
counts settled and unsettled verdicts per profile, and marks a chapter whose results may not be
current (its last run failed, or its code changed since they were written)."""

import json

import pytest

from conftest import redirect_book
from geovae_core import pages
from geovae_core.chapters import n1
from geovae_core.criteria import SMOOTH, compared
from geovae_core.ledger import chapter_state, criteria_markdown, ledger_counts, ledger_markdown, load_book_results
from geovae_core.profiles import resolve
from geovae_core.results import BOOK_RUN, PAGE_FINGERPRINT, Claim, save_results

N1 = pages.chapters()[0]
BELOW_ZERO = compared("the change (nats)", "<", 0.0)


def _book(monkeypatch, tmp_path, claims, fingerprint=None):
    redirect_book(monkeypatch, tmp_path)
    monkeypatch.setenv(BOOK_RUN, "1")
    if fingerprint is None:
        monkeypatch.delenv(PAGE_FINGERPRINT, raising=False)
    else:
        monkeypatch.setenv(PAGE_FINGERPRINT, json.dumps(fingerprint))
    parameters = resolve("N1", n1.SETTINGS, "smoke", device="cpu")
    return save_results(n1.CHAPTER, parameters, claims, {}, [], 1.0)


def test_a_results_file_edited_to_say_holds_is_shown_with_what_its_values_say(tmp_path, monkeypatch):
    path = _book(monkeypatch, tmp_path, [Claim("N1-x", "K Fig 1", "falls", "K", BELOW_ZERO, {0: 4.82})])
    payload = json.loads(path.read_text())
    payload["claims"][0]["verdict"] = "holds"  # edited by hand
    path.write_text(json.dumps(payload))
    results, problems = load_book_results()
    text = ledger_markdown(results, problems, "smoke")
    assert "**does not hold (0 of 1) ⚠️ the results file says 'holds'**" in text
    counts = ledger_counts(results, "smoke")["smoke"]
    assert counts["does not hold"] == 1 and counts["holds"] == 0


def test_the_headline_counts_settled_and_unsettled_verdicts(tmp_path, monkeypatch):
    steady = {0: [(1, -2.0), (2, -1.5), (4, -1.4)]}
    drifting = {0: [(1, -2.0), (2, -1.0), (4, -0.1)]}
    claims = [
        Claim("N1-a", "K", "a", "K", BELOW_ZERO, {0: -1.4}, trajectory=steady, budget=100),
        Claim("N1-b", "K", "b", "K", BELOW_ZERO, {0: -0.1}, trajectory=drifting, budget=100),
        Claim("N1-c", "K", "c", "K", BELOW_ZERO, {0: None}),  # not measured: no verdict to settle
    ]
    _book(monkeypatch, tmp_path, claims)
    results, _ = load_book_results()
    row = ledger_counts(results, "smoke")["smoke"]
    assert (row["holds"], row["not measured"], row["settled"], row["unsettled"], row["claims"]) == (2, 1, 1, 1, 3)
    text = ledger_markdown(results, [], "smoke")
    headline = "**2** holds, **1** not measured; of the verdicts, **1** settled and **1** unsettled"
    assert headline + " (50% of the verdicts, 33% of the claims)." in text
    assert "unsettled, moving toward failing (crosses at about" in text and "{ref}`trajectory <n1-claims>`" in text


def test_the_ledger_opens_with_one_row_per_chapter_counting_its_verdicts(tmp_path, monkeypatch):
    steady = {s: [(1, -2.0), (2, -1.5), (4, -1.4)] for s in (0, 1)}
    claims = [
        Claim("N1-a", "K", "a", "K", BELOW_ZERO, {0: -1.4, 1: -1.3}, trajectory=steady, budget=4),
        Claim("N1-b", "K", "b", "K", BELOW_ZERO, {0: 0.5, 1: 0.7}),
        Claim("N1-c", "K", "c", "K", BELOW_ZERO, {0: -0.5, 1: 0.5}),
        Claim("N1-d", "K", "d", "K", BELOW_ZERO, {0: None}),
    ]
    _book(monkeypatch, tmp_path, claims)
    results, problems = load_book_results()
    text = ledger_markdown(results, problems, "smoke")
    overview = text[text.index("| chapter | claims |") :].split("\n\n")[0].splitlines()
    assert overview[2].startswith("| [N1](N1-") and "| 4 | 1 | 1 | 1 | 1 | 1 |" in overview[2]
    assert text.index("| chapter | claims |") < text.index("## [N1 · ")  # before any chapter's section


def test_a_chapter_whose_code_changed_or_whose_last_run_failed_is_not_shown_as_current(tmp_path, monkeypatch):
    claims = [Claim("N1-a", "K", "a", "K", BELOW_ZERO, {0: -1.0})]
    _book(monkeypatch, tmp_path, claims, fingerprint=pages.fingerprint(N1, "smoke"))
    (result,) = load_book_results()[0]
    assert chapter_state(result) == ""
    _book(monkeypatch, tmp_path, claims, fingerprint={**pages.fingerprint(N1, "smoke"), "code": "an older digest"})
    (result,) = load_book_results()[0]
    assert chapter_state(result) == "its code changed since these results were written"
    assert "⚠️ Not current: its code changed since these results were written." in ledger_markdown([result], [], "smoke")
    pages.failed_copy(N1).parent.mkdir(parents=True, exist_ok=True)
    pages.failed_copy(N1).write_text("{}")
    assert chapter_state(result) == "its last run failed: these results are from the run before"
    _book(monkeypatch, tmp_path, claims)
    assert chapter_state(load_book_results()[0][0]) != ""


def test_a_long_chapter_says_which_verdicts_changed_since_its_quick_build(tmp_path, monkeypatch):
    """A long build keeps the quick results it replaces (a decoder on a frozen encoder trains on a
    longer encoder in long, so the long runs' early states are not quick's models): the ledger
    recomputes quick's verdicts from those values and lists the ones the longer training changed;
    a second long build keeps the same quick results."""
    from geovae_core.ledger import since_quick

    _book(monkeypatch, tmp_path, [])  # the book's results folder and a book run
    quick, long = (resolve("N1", n1.SETTINGS, p, device="cpu") for p in ("quick", "long"))
    before = [Claim("N1-a", "K", "a", "K", BELOW_ZERO, {0: 0.2}), Claim("N1-b", "K", "b", "K", BELOW_ZERO, {0: -1.1})]
    path = save_results(n1.CHAPTER, quick, before, {}, [], 1.0)
    later = [Claim("N1-a", "K", "a", "K", BELOW_ZERO, {0: -0.4}), Claim("N1-b", "K", "b", "K", BELOW_ZERO, {0: -1.3})]
    assert save_results(n1.CHAPTER, long, later, {}, [], 1.0) == path
    results, _ = load_book_results()
    assert since_quick(results[0]) == [("N1-a", "does not hold", "holds"), ("N1-b", "holds", "holds")]
    text = ledger_markdown(results, [], "long")
    assert "**1** of 2 verdicts changed: `N1-a` (does not hold → holds)." in text
    save_results(n1.CHAPTER, long, later, {}, [], 1.0)
    assert since_quick(load_book_results()[0][0]) == [("N1-a", "does not hold", "holds"), ("N1-b", "holds", "holds")]
    _book(monkeypatch, tmp_path, later)
    assert since_quick(load_book_results()[0][0]) == [] and "verdicts changed" not in ledger_markdown(
        load_book_results()[0], [], "smoke"
    )


N2 = pages.chapters()[1]


def _two_chapters(monkeypatch, tmp_path) -> tuple:
    """N1's results file and a copy of it as N2's: (N1's path, N2's path)."""
    claims = [Claim("N1-a", "K", "a", "K", BELOW_ZERO, {0: -1.0, 1: None}, trajectory={0: [(1, -0.5), (2, -1.0)]})]
    first = _book(monkeypatch, tmp_path, claims)
    payload = json.loads(first.read_text())
    second = first.parent / f"{N2.stem}.json"
    second.write_text(json.dumps({**payload, "notebook": N2.stem, "chapter": "N2", "title": "Second"}))
    return first, second


def _spoil(path, change):
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


def _claim(payload):
    return payload["claims"][0]


SPOILED = [
    (lambda p: _claim(p).update(per_seed="abc"), "TypeError: claims[0].per_seed is 'abc', not {seed: number or null}"),
    (lambda p: _claim(p)["per_seed"].update({"0": "0.5"}), "claims[0].per_seed is {'0': '0.5', '1': None}, not {seed"),
    (
        lambda p: _claim(p)["criterion"].update(comparison="~"),
        "ValueError: claims[0].criterion: comparison '~' is not one of <, <=, >, >=",
    ),
    (lambda p: _claim(p)["criterion"].update(threshold="0"), "claims[0].criterion.threshold is '0', not a number"),
    (lambda p: _claim(p)["criterion"].pop("text"), "KeyError: 'claims[0].criterion.text'"),
    (lambda p: _claim(p).update(trajectory={"0": [[0, 1.0], [2, 1.0]]}), "claims[0].trajectory is {'0': [[0, 1.0]"),
    (lambda p: _claim(p).update(budget="100"), "claims[0].budget is '100', not a number or null"),
    (lambda p: _claim(p).update(regime={"epochs": "many"}), "claims[0].regime is {'epochs': 'many'}, not"),
    (
        lambda p: _claim(p).update(controls={"absent": {"input": "noise", "per_seed": {"0": "low"}}, "present": {}}),
        "claims[0].controls.absent is {'input': 'noise', 'per_seed': {'0': ..., not {\"input\": text",
    ),
    (  # as written before controls were measured per seed
        lambda p: _claim(p).update(controls={"absent": {"value": 0.1, "input": "a"}, "present": {}}),
        """claims[0].controls.absent is {'value': 0.1, 'input': 'a'}, not {"input": text, "per_seed": {...}}""",
    ),
    (lambda p: _claim(p).update(did_not_train=["stuck"]), "claims[0].did_not_train is ['stuck'], not [[run, why]"),
    (lambda p: _claim(p).update(statement=["a"]), "claims[0].statement is ['a'], not text"),
    (lambda p: p.update(claims={"N2-a": 1}), "claims is {'N2-a': 1}, not a list"),
    (lambda p: p.update(quick=[{"id": "N2-q"}]), "KeyError: 'quick[0].statement'"),
    (lambda p: p.update(chapter=2), "chapter is 2, not text"),
    (lambda p: p.update(compute={"wall_seconds": "fast"}), "compute is {'wall_seconds': 'fast'}, not an object"),
    (lambda p: p.update(fingerprint="abc"), "fingerprint is 'abc', not an object or null"),
]


@pytest.mark.parametrize("change, why", SPOILED)
def test_a_results_file_of_the_wrong_kind_marks_its_own_chapter_and_nothing_else(tmp_path, monkeypatch, change, why):
    """JSON with a field of the wrong kind (as a hand edit or another version leaves it): one line
    names the file and the field; the other chapters' claims, counts and criteria are shown."""
    first, second = _two_chapters(monkeypatch, tmp_path)
    _spoil(second, change)
    results, problems = load_book_results()
    assert [r["notebook"] for r in results] == [N1.stem]
    assert len(problems) == 1 and problems[0].startswith(f"{N2.stem}.json: unreadable (") and why in problems[0]
    assert problems[0].endswith("; its claims are left out")
    text = ledger_markdown(results, problems, "smoke")
    assert f"- ⚠️ {problems[0]}" in text and "## [N1 · " in text and "Second" not in text
    assert ledger_counts(results, "smoke")["smoke"]["claims"] == 1
    assert "| smooth |" in criteria_markdown(results, {"smooth": SMOOTH})


def test_json_that_is_not_a_results_file_is_named_in_one_line(tmp_path, monkeypatch):
    _, second = _two_chapters(monkeypatch, tmp_path)
    second.write_text(json.dumps(["not", "an", "object"]))
    assert load_book_results()[1] == [
        f"{N2.stem}.json: unreadable (TypeError: the file is ['not', 'an', 'object'], not an object); "
        "its claims are left out"
    ]


def test_a_chapter_with_no_results_file_is_listed_and_counted_as_not_built(tmp_path, monkeypatch):
    first, second = _two_chapters(monkeypatch, tmp_path)
    chapters = len(pages.chapters())
    results, problems = load_book_results()
    assert problems == [] and ledger_counts(results, "smoke")["smoke"]["not built"] == chapters - 2
    second.unlink()
    results, problems = load_book_results()
    counts = ledger_counts(results, "quick")  # a book built in quick: its chapters not built count there
    assert counts["quick"]["not built"] == chapters - 1 and counts["quick"]["claims"] == 0
    assert counts["smoke"]["not built"] == 0 and counts["smoke"]["claims"] == 1
    text = ledger_markdown(results, problems, "smoke")
    assert (
        f"- ⚠️ {N2.stem}: not built (no results file {N2.stem}.json); build it with "
        "`python -m geovae_core.runner --only N2`"
    ) in text.splitlines()
    assert text.count(": not built (no results file") == chapters - 1
    assert f". **{chapters - 1}** of the book's chapters not built." in text.splitlines()[0]
    first.unlink()
    empty = ledger_markdown(*load_book_results(), "quick")
    assert "- profile `quick` (this book): 0 claims; of the verdicts" in empty and N1.stem + ": not built" in empty
