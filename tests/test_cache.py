"""The result cache, tested as the failures a user meets: a damaged or stale entry, a code
change, an unwritable cache, a NaN at the last step, two processes on one config."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock

import geovae_core.cache as cache
import geovae_core.checkpoints as checkpoints
import geovae_core.storage as storage
import geovae_core.training as training
from conftest import tiny_config
from geovae_core import CacheNotWritableError, TrainingDivergedError, train
from geovae_core.cache import run
from geovae_core.storage import ONE_OFF_LOG, STALE_TEMP_SECONDS, atomic_json_save, atomic_torch_save

REPO = Path(__file__).resolve().parent.parent
TINY = tiny_config()


@pytest.fixture
def runs(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path))
    monkeypatch.delenv("GEOVAE_REUSE_STALE", raising=False)
    return tmp_path / "runs"


def _version(monkeypatch, version: str) -> None:
    """Pretend the training code is at ``version`` (as after a code change or a branch switch)."""
    for module in (cache, checkpoints):
        monkeypatch.setattr(module, "code_version", lambda hooks=None, package=None: version)
    monkeypatch.setattr(checkpoints, "version_of", lambda modules, package=None: version)


def _folder(runs: Path, config=None, version: str | None = None) -> Path:
    """Where a run's states of one code version are kept: runs/<lineage key>/<code version>."""
    return runs / (config or TINY).lineage_key() / (version or checkpoints.code_version())


def _count_training(monkeypatch) -> list:
    trained = []
    real = cache.train

    def counting(config, hooks=None, progress=True, **kwargs):
        trained.append(config)
        return real(config, hooks, progress, **kwargs)

    monkeypatch.setattr(cache, "train", counting)
    return trained


def test_a_run_keeps_its_states_as_plain_data_under_its_lineage_and_code_version(runs):
    run(TINY, progress=False)
    folder = _folder(runs)
    assert sorted(runs.rglob("*.pt")) == [folder / "1.pt", folder / "2.pt"]  # half-way and at the end
    entry = torch.load(folder / "2.pt", weights_only=True)
    assert entry["code_version"] == checkpoints.code_version() and entry["label"] == TINY.label()
    assert '"latent_dim": 3' in entry["config"] and '"epochs": 2' in entry["config"]
    assert len(entry["state"]["history"]) == 2 and set(entry["state"]) >= {"model", "optimizer", "rng", "order"}
    assert run(TINY, progress=False).from_cache


def test_a_shorter_request_is_served_from_a_longer_run_without_training(runs, monkeypatch, capsys):
    full = run(TINY.replace(epochs=4), progress=False)
    trained = _count_training(monkeypatch)
    half = run(TINY.replace(epochs=2), progress=True)
    assert half.from_cache and trained == [] and half.history == full.history[:2]
    assert "loaded from cache (epoch 2 of the 4 kept;" in capsys.readouterr().out


def _plain(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize("family", ["shallow_mlp", "mlp"])
def test_a_longer_request_resumes_to_the_numbers_of_a_run_from_scratch(runs, monkeypatch, capsys, family):
    """Bitwise on one machine: weights, optimiser state and history (Adagrad with weight decay,
    and Adam; the reparameterisation's noise and the batch order go on from their states)."""
    config = tiny_config(family, epochs=5)
    scratch = train(config, progress=False)
    run(config.replace(epochs=2), progress=False)  # kept: 1, 2
    capsys.readouterr()
    trained = _count_training(monkeypatch)
    resumed = run(config, progress=False)
    assert "resumed from epoch 2 of 5" in capsys.readouterr().err and len(trained) == 1
    assert _plain(resumed.history) == _plain(scratch.history)
    for name, value in scratch.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    assert checkpoints.kept_epochs(_folder(runs, config)) == [1, 2, 5]


def test_a_resume_that_scores_other_epochs_trains_to_the_same_bits(runs):
    """A 3-epoch run scores the test set after epochs 1 and 3, a 5-epoch run after 1, 2 and 5:
    resumed from the first, the second still trains to the bits of its run from scratch, because a
    score draws its noise outside the run's random stream (a VAE: its test scores sample z)."""
    config = tiny_config("shallow_mlp", epochs=5)
    scratch = train(config, progress=False)
    run(config.replace(epochs=3), progress=False)
    resumed = run(config, progress=False)
    for name, value in scratch.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    train_rows = [{k: v for k, v in row.items() if k.startswith("train_")} for row in resumed.history]
    assert train_rows == [{k: v for k, v in row.items() if k.startswith("train_")} for row in scratch.history]
    assert [r["epoch"] for r in resumed.history if "test_loss" in r] == [1, 3, 5]
    assert [r["epoch"] for r in scratch.history if "test_loss" in r] == [1, 2, 5]
    assert resumed.history[-1]["test_loss"] == scratch.history[-1]["test_loss"]


def test_a_hook_that_remembers_earlier_epochs_resumes_where_it_was(runs):
    from geovae_core.geometry import coverage_hook

    config = tiny_config("mlp", epochs=3, test_size=200)
    scratch = train(config, hooks=coverage_hook(size=100), progress=False)
    run(config.replace(epochs=1), hooks=coverage_hook(size=100), progress=False)
    resumed = run(config, hooks=coverage_hook(size=100), progress=False)  # a fresh hook: its first tau is kept
    assert _plain(resumed.history) == _plain(scratch.history)


# --- damaged entries ---------------------------------------------------------------------


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(b"\x00garbage, not an entry" * 40)


def _empty(path):
    path.write_bytes(b"")


def _flip_a_weight_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # most of the file is weights: torch.load alone would load the wrong number
    path.write_bytes(bytes(data))


def _wrong_shapes(path):
    entry = torch.load(path, weights_only=True)
    entry["state"]["model"] = {k: v[:1] for k, v in entry["state"]["model"].items()}
    atomic_torch_save(entry, path)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncate, "BadZipFile"),
        (_garbage, "BadZipFile"),
        (_empty, "BadZipFile"),
        (_flip_a_weight_byte, "CRC-32 mismatch"),
        (_wrong_shapes, "Error(s) in loading state_dict"),
    ],
)
def test_a_damaged_entry_is_named_set_aside_and_retrained(runs, capsys, monkeypatch, damage, reason):
    first = run(TINY, progress=False)
    path = _folder(runs) / "2.pt"
    damage(path)
    damaged_bytes = path.read_bytes()
    trained = _count_training(monkeypatch)
    again = run(TINY, progress=False)  # from the state it kept after epoch 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and TINY.label() in lines[0] and str(path) in lines[0]
    assert "is damaged" in lines[0] and reason in lines[0] and "not used" in lines[0]
    assert "resumed from epoch 1 of 2" in lines[1]
    assert (
        trained == [TINY] and not again.from_cache and again.history[-1]["test_loss"] == first.history[-1]["test_loss"]
    )
    moved = list((runs / "damaged").iterdir())
    assert len(moved) == 1 and moved[0].read_bytes() == damaged_bytes and str(moved[0]) in lines[0]
    assert run(TINY, progress=False).from_cache  # the retrained entry is good


# --- code versions -----------------------------------------------------------------------


def test_an_entry_of_other_code_is_kept_never_loaded_and_each_version_keeps_its_own(runs, capsys, monkeypatch):
    _version(monkeypatch, "aaaaaaaaaaaa")
    run(TINY, progress=False)
    capsys.readouterr()
    _version(monkeypatch, "bbbbbbbbbbbb")  # a changed loss, or another branch
    trained = _count_training(monkeypatch)
    assert not run(TINY, progress=False).from_cache and len(trained) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and TINY.label() in lines[0] and "retraining" in lines[0]
    assert "trained by code version aaaaaaaaaaaa, this code is bbbbbbbbbbbb" in lines[0]
    assert sorted(p.name for p in (runs / TINY.lineage_key()).iterdir() if p.is_dir()) == [
        "aaaaaaaaaaaa",
        "bbbbbbbbbbbb",
    ]
    _version(monkeypatch, "aaaaaaaaaaaa")  # back on the first branch: its own entry, nothing retrained
    assert run(TINY, progress=False).from_cache and len(trained) == 1
    assert capsys.readouterr().err == ""


def test_reuse_stale_loads_the_newest_other_version_and_says_so(runs, capsys, monkeypatch):
    _version(monkeypatch, "aaaaaaaaaaaa")
    old = run(TINY, progress=False)
    _version(monkeypatch, "bbbbbbbbbbbb")
    monkeypatch.setenv("GEOVAE_REUSE_STALE", "1")
    trained = _count_training(monkeypatch)
    capsys.readouterr()
    reused = run(TINY, progress=False)
    lines = capsys.readouterr().err.strip().splitlines()
    assert reused.from_cache and trained == [] and reused.history == old.history
    assert len(lines) == 1 and "GEOVAE_REUSE_STALE=1" in lines[0] and "code version aaaaaaaaaaaa" in lines[0]
    assert list(_folder(runs, version="bbbbbbbbbbbb").glob("*.pt")) == []  # nothing new written


def test_reuse_stale_never_crashes_on_weights_that_no_longer_fit(runs, capsys, monkeypatch):
    _version(monkeypatch, "aaaaaaaaaaaa")
    run(TINY, progress=False)
    stale = _folder(runs, version="aaaaaaaaaaaa") / "2.pt"
    _wrong_shapes(stale)  # as after a change of the architecture
    stale_bytes = stale.read_bytes()
    _version(monkeypatch, "bbbbbbbbbbbb")
    monkeypatch.setenv("GEOVAE_REUSE_STALE", "1")
    capsys.readouterr()
    result = run(TINY, progress=False)
    lines = capsys.readouterr().err.strip().splitlines()
    assert not result.from_cache and len(lines) == 1
    assert "does not load" in lines[0] and "Error(s) in loading state_dict" in lines[0] and "retraining" in lines[0]
    assert stale.read_bytes() == stale_bytes  # the other code's entry is left as it was
    assert (_folder(runs, version="bbbbbbbbbbbb") / "2.pt").is_file()


def test_entries_of_the_layouts_before_are_stale_never_loaded_and_removable(runs, capsys, monkeypatch):
    result = train(TINY, progress=False)
    unversioned = runs / f"{TINY.key()}.pt"  # runs/<key>.pt, as written before code versions
    one_file = runs / TINY.key() / "0123456789ab.pt"  # runs/<key>/<version>.pt, before kept states
    for legacy in (unversioned, one_file):
        atomic_torch_save(
            {
                "config": TINY.to_dict(),
                "history": result.history,
                "image_shape": result.image_shape,
                "state_dict": result.model.state_dict(),
            },
            legacy,
        )
    monkeypatch.setenv("GEOVAE_REUSE_STALE", "1")
    assert not run(TINY, progress=False).from_cache  # never loaded: another layout
    capsys.readouterr()
    old = time.time() - 2 * cache.SAFE_AGE_SECONDS
    for legacy in (unversioned, one_file):
        os.utime(legacy, (old, old))
    assert cache.main(["--remove-stale"]) == 0
    listed = capsys.readouterr().out
    assert "stale    unversioned" in listed and "stale    0123456789ab" in listed
    assert "removed 2 stale and 0 damaged entries" in listed and not unversioned.exists() and not one_file.exists()


def _copy_code(folder: Path) -> Path:
    """A copy of the package, named as it is (the import closure follows its name)."""
    shutil.copytree(REPO / "geovae_core", folder / "geovae_core", ignore=shutil.ignore_patterns("__pycache__"))
    return folder / "geovae_core"


def test_the_code_version_is_the_import_closure_of_the_loop_and_the_hooks():
    from geovae_core.codebook import centre_step_hook
    from geovae_core.geometry import coverage_hook

    assert {"training", "models", "losses", "data", "config", "optimizers"} <= set(checkpoints.code_modules())
    assert not {"cache", "runner", "notebook", "criteria", "results", "metrics"} & set(checkpoints.code_modules())
    assert "geometry" in checkpoints.code_modules(coverage_hook()) and "codebook" in checkpoints.code_modules(
        centre_step_hook()
    )


def test_the_code_version_ignores_comments_docstrings_and_layout_but_not_code(tmp_path):
    version = checkpoints.code_version()
    assert version == checkpoints.code_version(package=_copy_code(tmp_path / "same"))
    edited = _copy_code(tmp_path / "edited")
    losses = edited / "losses.py"
    source = losses.read_text()
    assert '"""KL(N(mu, sigma^2) || N(0, I)) per sample' in source
    source = source.replace('"""KL(N(mu, sigma^2) || N(0, I)) per sample', '"""The KL divergence per sample')
    source = source.replace(
        "    return -0.5 * torch.sum(1 + logvar", "    # a comment\n    return -0.5 *   torch.sum(\n        1 + logvar"
    )
    losses.write_text("# a new first line\n" + source)
    assert checkpoints.code_version(package=edited) == version
    changed = _copy_code(tmp_path / "changed")
    (changed / "losses.py").write_text(source.replace("return -0.5 *   torch.sum(", "return -0.25 * torch.sum("))
    assert checkpoints.code_version(package=changed) != version
    hooks = _copy_code(tmp_path / "hooks")  # the per-epoch hooks are part of it too
    geometry = (hooks / "geometry.py").read_text()
    (hooks / "geometry.py").write_text(geometry.replace("eta / 100.0", "eta / 99.0"))
    assert checkpoints.code_version(package=hooks) != version
    elsewhere = _copy_code(tmp_path / "elsewhere")  # code no trained run depends on
    (elsewhere / "runner.py").write_text((elsewhere / "runner.py").read_text() + "\nANSWER = 42\n")
    assert checkpoints.code_version(package=elsewhere) == version


# --- an unwritable cache fails before training --------------------------------------------


def _never_train(*args, **kwargs):
    raise AssertionError("training started")


def test_a_cache_under_a_regular_file_fails_at_once_in_one_line(monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "a-file" / "cache"))
    monkeypatch.setattr(cache, "train", _never_train)
    with pytest.raises(CacheNotWritableError) as error:
        run(TINY, progress=False)
    message = str(error.value)
    assert "\n" not in message and "GEOVAE_CACHE" in message and str(tmp_path / "a-file" / "cache" / "runs") in message


def test_a_cache_folder_that_refuses_writes_fails_at_once(runs, monkeypatch):
    (runs / TINY.lineage_key()).mkdir(parents=True)
    real_mkstemp = tempfile.mkstemp

    def refusing(*args, prefix="", **kwargs):  # a read-only folder, as root cannot make one by chmod
        if prefix.startswith(".probe."):
            raise PermissionError(13, "Permission denied")
        return real_mkstemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr("tempfile.mkstemp", refusing)
    monkeypatch.setattr(cache, "train", _never_train)
    with pytest.raises(CacheNotWritableError, match=r"cannot write the cache folder .*Permission denied.*GEOVAE_CACHE"):
        run(TINY, progress=False)
    assert not any(p.name.startswith(".probe") for p in runs.rglob("*"))


def _disk_with(free: int):
    return lambda path: shutil._ntuple_diskusage(10**12, 10**12 - free, free)


def test_a_disk_without_room_for_the_entry_fails_before_training(runs, monkeypatch):
    monkeypatch.setattr(storage.shutil, "disk_usage", _disk_with(2 * 2**20))
    monkeypatch.setattr(cache, "train", _never_train)
    with pytest.raises(CacheNotWritableError) as error:
        run(TINY, progress=False)
    message = str(error.value)
    assert re.search(r": no space left in .*runs/\w+/\w+: 2 MB free, 16 MB needed; free some space there", message)
    assert "\n" not in message


def test_a_disk_that_fills_while_training_is_said_as_such_not_as_torch_s_error(runs, monkeypatch):
    def torch_on_a_full_disk(obj, path):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4288 vs 4180")

    monkeypatch.setattr(cache, "check_space", lambda folder, size: None)  # room when training started
    monkeypatch.setattr(storage.shutil, "disk_usage", _disk_with(0))
    monkeypatch.setattr(checkpoints, "atomic_torch_save", torch_on_a_full_disk)
    with pytest.raises(CacheNotWritableError) as error:
        run(TINY, progress=False)
    message = str(error.value)
    assert f": trained, but no space left in {_folder(runs)}: the entry could not be written" in message
    assert "enforce fail" not in message and "\n" not in message


# --- permissions and temp files -----------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_entries_and_results_are_created_with_the_umask_mode(runs, tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        run(TINY.replace(epochs=1), progress=False)
        atomic_json_save({"a": 1}, tmp_path / "results" / "N1.json")
    finally:
        os.umask(old)
    entry = next(runs.rglob("*.pt"))
    assert entry.stat().st_mode & 0o777 == mode and (tmp_path / "results" / "N1.json").stat().st_mode & 0o777 == mode
    assert entry.parent.stat().st_mode & 0o777 == 0o777 & ~umask


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    dead, old = _dead_pid(), time.time() - STALE_TEMP_SECONDS - 60
    files = {
        "dead and old": f".mnist.pt.{dead}.k2j4h.tmp",
        "old layout": ".mnist.pt.x8bq1m_o.tmp",
        "live and old": f".mnist.pt.{os.getpid()}.a1b2c.tmp",
        "dead but fresh": f".mnist.pt.{dead}.zz9q.tmp",
    }
    for what, name in files.items():
        (folder / name).write_bytes(b"half a file")
        if "old" in what:
            os.utime(folder / name, (old, old))
    atomic_torch_save({"x": torch.zeros(1)}, folder / "cifar10.pt")
    left = {what for what, name in files.items() if (folder / name).exists()}
    assert left == {"live and old", "dead but fresh"} and (folder / "cifar10.pt").is_file()


# --- nothing non-finite is cached ---------------------------------------------------------


def test_a_hook_metric_that_becomes_infinite_in_the_last_epoch_keeps_only_the_finite_states(runs):
    calls = []

    def spread(model, split):
        calls.append(1)
        return {"spread": math.inf if len(calls) == TINY.epochs else 1.0}

    with pytest.raises(
        TrainingDivergedError,
        match=r"shallow_mlp/sampled mnist recon\+kl z=3 .*: spread of epoch 2 not finite after "
        r"training; nothing was cached",
    ):
        run(TINY, hooks={"spread": spread}, progress=False)
    assert [p.name for p in runs.rglob("*.pt")] == ["1.pt"]  # the run of 1 epoch was finite


def test_a_test_metric_that_is_nan_caches_nothing(runs, monkeypatch):
    real = training.evaluate

    def nan_test_kl(*args, **kwargs):
        return {**real(*args, **kwargs), "kl": math.nan}

    monkeypatch.setattr(training, "evaluate", nan_test_kl)
    with pytest.raises(TrainingDivergedError, match=r"test_kl of epoch 1 not finite"):
        run(TINY, progress=False)
    assert list(runs.rglob("*.pt")) == []


def _optimizer_that_breaks_a_weight_at_the_last_step(monkeypatch, steps: int):
    real = training.make_optimizer

    def make(config, parameters):
        parameters = list(parameters)
        optimizer = real(config, parameters)
        step, done = optimizer.step, []

        def breaking_step(*args, **kwargs):
            step(*args, **kwargs)
            done.append(1)
            if len(done) == steps:
                with torch.no_grad():
                    parameters[0][0, 0] = math.inf

        optimizer.step = breaking_step
        return optimizer

    monkeypatch.setattr(training, "make_optimizer", make)


def test_a_weight_made_infinite_by_the_last_step_keeps_only_the_finite_states(runs, monkeypatch):
    config = TINY.replace(test_size=0)  # no test loss to notice it: only the weight check can
    _optimizer_that_breaks_a_weight_at_the_last_step(monkeypatch, steps=2 * 400 // 100)
    with pytest.raises(
        TrainingDivergedError,
        match=r"shallow_mlp/sampled .*: weight encoder\.1\.0\.weight not finite after "
        r"training; nothing was cached",
    ):
        run(config, progress=False)
    assert [p.name for p in runs.rglob("*.pt")] == ["1.pt"]
    with pytest.raises(TrainingDivergedError, match=r"weight encoder\.1\.0\.weight"):
        train(config, progress=False)  # a direct call is guarded too


# --- two processes, one key ---------------------------------------------------------------

CHILD = r"""
import os, sys, time
from pathlib import Path
import geovae_core.cache as cache
from geovae_core.cache import run

name, mode = sys.argv[1], sys.argv[2]
here = Path(os.environ["WORK"])
real_train = cache.train

def observed_train(config, hooks=None, progress=True, **kwargs):
    with open(here / "trained", "a") as counter:
        counter.write(name + "\n")
    if mode == "hold":  # hold the lock until killed
        (here / "holding").touch()
        time.sleep(600)
    if mode == "race":  # hold the lock until the other process is on its way to it
        deadline = time.time() + 120
        while not all((here / f"ready-{n}").exists() for n in ("a", "b")) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(3)
    return real_train(config, hooks, progress, **kwargs)

cache.train = observed_train
sys.path.insert(0, os.environ["TESTS"])
from conftest import tiny_config
config = tiny_config()
(here / f"ready-{name}").touch()
print(f"{name} from_cache={run(config, progress=False).from_cache}")
"""


def _child(name: str, mode: str, work: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "WORK": str(work),
        "TESTS": str(REPO / "tests"),
        "GEOVAE_CACHE": str(work / "cache"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, name, mode],
        env=env,
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_two_processes_on_one_config_train_it_once(tmp_path):
    a, b = _child("a", "race", tmp_path), _child("b", "race", tmp_path)
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, err_a + err_b
    trained = (tmp_path / "trained").read_text().split()
    assert len(trained) == 1  # exactly one trained ...
    waiter_out, waiter_err = (out_b, err_b) if trained == ["a"] else (out_a, err_a)
    assert "from_cache=True" in waiter_out  # ... the other waited, then loaded its entry
    assert "waiting for another process working on it" in waiter_err and TINY.label() in waiter_err
    assert len(list((tmp_path / "cache" / "runs").rglob("*.pt"))) == 2  # one run's two kept states


@pytest.mark.slow
def test_a_holder_killed_with_sigkill_never_blocks_the_next_run(tmp_path):
    holder = _child("killed", "hold", tmp_path)
    deadline = time.time() + 120
    while not (tmp_path / "holding").exists():
        assert time.time() < deadline and holder.poll() is None, holder.stderr.read()
        time.sleep(0.1)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert list((tmp_path / "cache" / "runs").rglob("*.pt")) == []
    out, err = _child("next", "plain", tmp_path).communicate(timeout=120)
    assert "next from_cache=False" in out, err
    assert (tmp_path / "trained").read_text().split() == ["killed", "next"]
    assert len(list((tmp_path / "cache" / "runs").rglob("*.pt"))) == 2  # one run's two kept states


# --- python -m geovae_core.cache ----------------------------------------------------------


def test_the_listing_says_current_stale_or_damaged_and_remove_stale_frees_them(runs, capsys, monkeypatch):
    _version(monkeypatch, "aaaaaaaaaaaa")
    run(TINY, progress=False)
    _version(monkeypatch, "bbbbbbbbbbbb")
    run(TINY, progress=False)
    run(TINY.replace(seed=1), progress=False)
    damaged = _folder(runs, TINY.replace(seed=1), "bbbbbbbbbbbb") / "2.pt"
    _truncate(damaged)
    run(TINY.replace(seed=1), progress=False)  # sets the damaged file aside and trains it again
    _truncate(damaged)  # and damage it once more, to be found by the listing
    capsys.readouterr()
    assert cache.main([]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    states = sorted(line.split()[0] for line in lines[:-1])
    assert states == ["current", "damaged", "damaged", "stale"]
    assert any(line.startswith("stale    aaaaaaaaaaaa") and TINY.label() in line for line in lines)
    assert any(line.startswith("current  bbbbbbbbbbbb") and TINY.label() in line for line in lines)
    assert any(line.startswith("damaged  bbbbbbbbbbbb") and "BadZipFile" in line for line in lines)
    assert lines[-1].startswith(f"4 entries in {runs.parent}: 1 current") and "1 stale" in lines[-1]
    assert "2 damaged" in lines[-1] and "this code is version bbbbbbbbbbbb" in lines[-1]
    stale = _folder(runs, version="aaaaaaaaaaaa")
    assert any(
        line.startswith("stale    aaaaaaaaaaaa") and line.endswith(f"epochs 1,2  {stale.relative_to(runs.parent)}")
        for line in lines
    )
    assert cache.main(["--remove-stale"]) == 0  # the stale entry is seconds old: another checkout may use it
    out = capsys.readouterr().out.strip().splitlines()
    assert f"kept {stale.relative_to(runs.parent)} ({TINY.label()}): written " in out[-2]
    assert "ago, less than 1 d: another checkout may be using it" in out[-2]
    assert out[-1].startswith("removed 0 stale and 2 damaged entries, freed ")
    assert out[-1].endswith("kept 1 (see above)")
    day_old = time.time() - 2 * cache.SAFE_AGE_SECONDS
    for state in stale.glob("*.pt"):
        os.utime(state, (day_old, day_old))
    with FileLock(stale.parent / ".lock"):  # a process is training or loading that key
        assert cache.main(["--remove-stale"]) == 0
        assert "locked by a running process" in capsys.readouterr().out and stale.is_dir()
    assert cache.main(["--remove-stale"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("removed 1 stale and 0 damaged entries, freed ") and not summary.endswith(" 0 B")
    kept = [p.relative_to(runs).as_posix() for p in sorted(runs.rglob("*.pt"))]
    assert kept == [f"{TINY.lineage_key()}/bbbbbbbbbbbb/{e}.pt" for e in (1, 2)]
    assert run(TINY, progress=False).from_cache


@pytest.mark.slow
def test_the_cache_command_runs_as_a_module(runs):
    run(TINY.replace(epochs=1), progress=False)
    done = subprocess.run(
        [sys.executable, "-m", "geovae_core.cache"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith(f"current  {checkpoints.code_version()}") and "1 entries in" in done.stdout


# --- the test session cleans up after itself ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("keep", [False, True])
def test_the_test_session_removes_its_cache_unless_asked_to_keep_it(tmp_path, keep):
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("GEOVAE_KEEP_TEST_CACHE", None)
    if keep:
        env["GEOVAE_KEEP_TEST_CACHE"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "tests/test_config.py::test_a_valid_config_passes"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sessions = list(tmp_path.glob("geovae-test-*"))
    assert len(sessions) == (1 if keep else 0)
    if keep:
        assert str(sessions[0]) in done.stdout


def test_a_one_off_run_is_said_when_it_trains_and_not_when_it_loads(runs, monkeypatch, capsys):
    """``run(..., one_off=...)`` (a judge classifier): outside the runner its training is said
    on stderr; under the runner it is a line of the page's log instead; loaded, it says nothing."""
    run(TINY, progress=False, one_off="training the tiny judge")
    said = capsys.readouterr().err
    assert f"training the tiny judge: paid once per cache ({runs.parent})" in said
    assert re.search(r"training the tiny judge: done in [\d.]+ s, kept in the cache", said)
    log = runs.parent / "one-off.jsonl"
    monkeypatch.setenv(ONE_OFF_LOG, str(log))
    run(TINY.replace(seed=1), progress=False, one_off="training the tiny judge")
    assert capsys.readouterr().err == ""
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["what"] == "training the tiny judge" and entry["seconds"] >= 0
    run(TINY, progress=False, one_off="training the tiny judge")  # loaded: nothing more
    assert len(log.read_text().splitlines()) == 1 and capsys.readouterr().err == ""
