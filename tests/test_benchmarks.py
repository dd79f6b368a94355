"""``make bench``'s training benchmark still runs against the code it measures: every row,
the floor included, trains an epoch (the in-memory rows on 1,000 images) and reports its time."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from geovae_core.data import load_dataset

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_training.py"

pytestmark = pytest.mark.slow  # make test runs it; pytest -m 'not slow' leaves it out


def test_every_row_of_the_training_benchmark_runs_an_epoch():
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.rows(load_dataset("mnist").train_images[:1000])
    assert len(rows) == 8 and {bench.FLOOR, bench.COMPILED, bench.UNFLUSHED} <= set(rows)
    for label, epochs in rows.items():
        seconds = next(epochs)
        assert math.isfinite(seconds) and seconds > 0, label
