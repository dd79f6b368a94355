"""Test session set-up: a fresh cache and results folder, and the smoke profile for nbval.

Set at import, before nbval starts any kernel, so the notebooks' kernels inherit it. The
folder is removed when the session ends, unless ``GEOVAE_KEEP_TEST_CACHE=1``.
"""

import os
import shutil
import tempfile
from pathlib import Path

_session = Path(tempfile.mkdtemp(prefix="geovae-test-"))
os.environ["GEOVAE_CACHE"] = str(_session / "cache")
os.environ["GEOVAE_RESULTS"] = str(_session / "results")
os.environ["GEOVAE_PROFILE"] = "smoke"
os.environ["GEOVAE_PLAIN_PROGRESS"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
if "GEOVAE_DATA" not in os.environ and (Path(__file__).parent / "../shared/data/MNIST").is_dir():
    os.environ["GEOVAE_DATA"] = str((Path(__file__).parent / "../shared/data").resolve())


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("GEOVAE_KEEP_TEST_CACHE") == "1":
        print(f"\nGEOVAE_KEEP_TEST_CACHE=1: the test cache and results are kept in {_session}")
    else:
        shutil.rmtree(_session, ignore_errors=True)
