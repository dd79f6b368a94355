"""The ledger cannot be fooled: it recomputes every verdict from the stored criterion and values,
counts settled and unsettled verdicts per profile, and marks a chapter whose results may not be
current (its last run failed, or its code changed since they were written)."""

import json

from conftest import redirect_book
from geovae_core import pages
from geovae_core.chapters import n1
from geovae_core.criteria import compared
from geovae_core.ledger import chapter_state, ledger_counts, ledger_markdown, load_book_results
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
    assert ledger_counts(results)["smoke"]["does not hold"] == 1 and ledger_counts(results)["smoke"]["holds"] == 0


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
    row = ledger_counts(results)["smoke"]
    assert (row["holds"], row["not measured"], row["settled"], row["unsettled"], row["claims"]) == (2, 1, 1, 1, 3)
    text = ledger_markdown(results, [], "smoke")
    headline = "**2** holds, **1** not measured; of the verdicts, **1** settled and **1** unsettled"
    assert headline + " (50% of the verdicts, 33% of the claims)." in text
    assert "unsettled, moving toward failing (crosses at about" in text and "{ref}`trajectory <n1-claims>`" in text


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
