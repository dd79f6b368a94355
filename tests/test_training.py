import math
from pathlib import Path

import pytest
import torch

import geovae_core.losses as losses
from conftest import tiny_config
from geovae_core import TrainingDivergedError, train
from geovae_core.cache import run, select_step_size
from geovae_core.data import experiment_split
from geovae_core.training import checkpoint_epochs, evaluate

TINY = tiny_config()


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path))
    return tmp_path / "runs"


def _entries(cache: Path) -> list:
    """The cached runs (one folder of kept states each)."""
    return sorted({p.parent for p in cache.rglob("*.pt")})


def test_training_records_train_and_test_terms_each_epoch(cache):
    result = train(TINY, progress=False)
    assert [row["epoch"] for row in result.history] == [1, 2]
    row = result.history[-1]
    assert {"train_loss", "train_recon", "train_kl", "test_loss", "test_recon", "test_kl", "seconds"} <= set(row)
    assert row["train_loss"] == pytest.approx(row["train_recon"] + row["train_kl"], rel=1e-5)
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]


def test_the_test_set_is_scored_at_the_kept_epochs_with_noise_of_its_own(cache):
    config = TINY.replace(epochs=5)
    result = train(config, progress=False)
    assert [row["epoch"] for row in result.history if "test_loss" in row] == checkpoint_epochs(5) == [1, 2, 5]
    assert all("train_loss" in row for row in result.history)
    assert result.points("test_loss") == ([1, 2, 5], result.curve("test_loss"))
    split = experiment_split(config)
    before = torch.get_rng_state()
    scores = evaluate(result.model, split[2], split[3], config)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's stream goes on untouched
    torch.manual_seed(123)
    assert evaluate(result.model, split[2], split[3], config) == scores  # the same noise each time
    recorded = {k.removeprefix("test_"): v for k, v in result.final.items() if k.startswith("test_")}
    assert scores == pytest.approx(recorded)


def test_the_same_seed_gives_the_same_numbers(cache):
    a, b = train(TINY, progress=False), train(TINY, progress=False)
    assert [r["test_loss"] for r in a.history] == [r["test_loss"] for r in b.history]
    assert train(TINY.replace(seed=1), progress=False).history[-1]["test_loss"] != a.history[-1]["test_loss"]


def test_a_cached_run_is_loaded_not_retrained(cache):
    first = run(TINY, progress=False)
    second = run(TINY, progress=False)
    assert not first.from_cache and second.from_cache and second.history == first.history
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(first.model.encode(x)[0], second.model.encode(x)[0])
    assert len(_entries(cache)) == 1


@pytest.mark.parametrize(
    "change",
    [
        dict(seed=1),
        dict(lr=0.01),
        dict(latent_dim=4),
        dict(loss_terms=(("recon", 1.0), ("kl", 0.5))),
        dict(binarize=True),
    ],
)
def test_any_config_change_misses_the_cache(cache, change):
    run(TINY, progress=False)
    assert not run(TINY.replace(**change), progress=False).from_cache
    assert len(_entries(cache)) == 2


def test_hook_metrics_are_recorded_and_keyed(cache):
    hooks = {"mu_norm": lambda model, split: {"mu_norm": float(model.encode(split[2])[0].norm(dim=1).mean())}}
    with_hook = run(TINY, hooks=hooks, progress=False)
    assert all("mu_norm" in row for row in with_hook.history)
    assert not run(TINY, progress=False).from_cache  # another key: the hook names are part of it


def test_an_interrupted_run_leaves_no_entry(cache):
    def interrupt(model, split):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(TINY, hooks={"interrupt": interrupt}, progress=False)
    assert _entries(cache) == []


def test_a_write_killed_midway_leaves_no_entry_and_no_temp_file(cache, monkeypatch):
    def dying_save(obj, stream):
        stream.write(b"half an entry")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run(TINY, progress=False)
    assert [p.name for p in cache.rglob("*") if p.is_file()] == [".lock"]  # no entry, no temp file


def test_a_nan_loss_stops_with_a_clear_error_and_caches_nothing(cache, monkeypatch):
    monkeypatch.setitem(losses.LOSS_TERMS, "kl", lambda x, y, out, config: out["mu"].sum(1) * math.nan)
    with pytest.raises(
        TrainingDivergedError,
        match=r"shallow_mlp/sampled mnist recon\+kl z=3 .*loss became nan in epoch 1; nothing was cached",
    ):
        run(TINY, progress=False)
    assert _entries(cache) == []


def test_the_step_size_search_keeps_the_lowest_training_loss_and_survives_divergence(cache, monkeypatch):
    real_kl = losses.LOSS_TERMS["kl"]

    def kl_diverging_for_big_steps(x, y, out, config):
        value = real_kl(x, y, out, config)
        return value * math.inf if config.lr > 0.05 else value

    monkeypatch.setitem(losses.LOSS_TERMS, "kl", kl_diverging_for_big_steps)
    best, finals = select_step_size(TINY, [0.01, 0.02, 0.1], epochs=1, train_size=200, progress=False)
    assert finals[0.1] == math.inf and best == min(finals, key=finals.get) and best in (0.01, 0.02)


def test_a_warm_start_freezes_the_encoder_and_retrains_a_fresh_decoder(cache):
    vae = TINY.replace(model="mlp", widths=(32,), activation="relu", init_std=None)
    ablation = vae.replace(
        latent="mean", loss_terms=(("recon", 1.0),), init_from=vae, reinit=("decoder",), freeze=("encoder",)
    )
    base, new = run(vae, progress=False), run(ablation, progress=False)
    for a, b in zip(base.model.encoder.parameters(), new.model.encoder.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(base.model.decoder.parameters(), new.model.decoder.parameters()):
        assert not torch.equal(a, b)
    assert new.history[-1]["train_loss"] == pytest.approx(new.history[-1]["train_recon"])
    assert len(_entries(cache)) == 2 and run(ablation, progress=False).from_cache


def test_the_cache_key_ignores_defaults_but_not_values():
    explicit_default = TINY.replace(freeze=())
    assert explicit_default.key() == TINY.key()
    assert TINY.replace(freeze=("encoder",)).key() != TINY.key()
    nested = TINY.replace(init_from=TINY)
    assert nested.key() != TINY.replace(init_from=TINY.replace(seed=5)).key()


def test_a_frozen_classifier_keeps_its_features_while_a_decoder_learns_them(cache):
    classifier = TINY.replace(
        model="classifier_ae",
        latent="point",
        latent_dim=8,
        widths=(16, 16),
        activation="relu",
        likelihood="mse",
        init_std=None,
        optimizer="adam",
        lr=1e-2,
        loss_terms=(("xent", 1.0),),
        epochs=5,
        train_size=600,
    )
    decoder = classifier.replace(loss_terms=(("recon", 1.0),), init_from=classifier, freeze=("encoder", "head"))
    first, second = run(classifier, progress=False), run(decoder, progress=False)
    assert first.final["test_xent"] < math.log(10) - 0.5  # it learned to classify
    for name in ("encoder", "head"):
        for a, b in zip(getattr(first.model, name).parameters(), getattr(second.model, name).parameters()):
            assert torch.equal(a, b)
    assert second.curve("train_recon")[-1] < second.curve("train_recon")[0]
    out = second.model(torch.rand(5, 1, 28, 28))
    assert out["class_logits"].shape == (5, 10) and out["z"].shape == (5, 8)
