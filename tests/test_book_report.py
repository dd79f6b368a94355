"""What the runner reports: the per-page timings and the dry run's projection, as the
"Reproducing this book" page shows them."""

from conftest import redirect_book
from geovae_core import book_report, pages
from geovae_core.pages import LEDGER
from geovae_core.storage import atomic_json_save

N1 = pages.chapters()[0]


def test_the_reproduce_page_shows_the_timings_and_the_dry_run(tmp_path, monkeypatch):
    redirect_book(monkeypatch, tmp_path)
    assert book_report.timings_markdown().startswith("No timings yet: `executed/timings.json` is missing")
    assert book_report.dry_run_markdown().startswith("No dry run yet: `executed/dry-run.json` is missing")
    book_report.record_timing(
        N1,
        {
            "profile": "quick",
            "seconds": 95.0,
            "phases": {"set-up": 5.0, "train": 80.0, "plot": 10.0},
            "once": {"decoding celeba": 9.84, "training the mnist judge": 20.0},
            "state": "executed",
        },
    )
    book_report.record_timing(LEDGER, {"profile": "quick", "seconds": None, "phases": {}, "state": "failed"})
    table = book_report.timings_markdown().splitlines()
    assert table[2:4] == [
        "| N1 | quick | 95 | 5 | 80 | 0 | 0 | 10 | decoding celeba 9.8; training the mnist judge 20.0 |",
        "| ledger | quick | failed | 0 | 0 | 0 | 0 | 0 |  |",
    ]
    record = {
        "key": "k",
        "hooks": [],
        "epochs": 10,
        "steps_per_epoch": 100,
        "parameters": 2_000_000,
        "memory_bytes": 50e6,
        "flops_per_step": 20e9,
        "seconds_per_step": 0.36,
    }
    atomic_json_save(
        {
            "assumptions": book_report.ASSUMPTIONS,
            "chapters": {"N4": {"profile": "paper", "error": None, **book_report.projection([record, record])}},
        },
        pages.dry_run_file(),
    )
    assert "| N4 | paper | 1 | 2.00 | 50 | 1 s | 6 min | checked |" in book_report.dry_run_markdown()
