"""Runs of one model that differ only by seed train as one stacked model, and each ends where its
separate run ends, up to float rounding; the cache keeps each member as its own run."""

import pytest
import torch

import geovae_core.cache as cache
from conftest import tiny_config
from geovae_core import train
from geovae_core.cache import run, run_many
from geovae_core.stacking import stack_key, stackable, train_stacked


@pytest.fixture
def runs(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path))
    return tmp_path / "runs"


def _plain(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


@pytest.mark.parametrize(
    "family, changes", [("shallow_mlp", {}), ("mlp", {"latent": "point", "loss_terms": (("recon", 1.0),)})]
)
def test_a_stacked_member_ends_where_its_separate_run_ends_up_to_float_rounding(family, changes):
    configs = [tiny_config(family, seed=s, **changes) for s in (0, 1, 2)]
    configs.append(configs[0].replace(binarize=True))  # a member on other data
    stacked = train_stacked(configs, progress=False)
    for config, member in zip(configs, stacked):
        alone = train(config, progress=False)
        for a, b in zip(_plain(alone.history), _plain(member.history), strict=True):
            assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
        for name, value in alone.model.state_dict().items():
            # Adagrad's and Adam's first steps move a weight by lr times the sign of its gradient: a
            # gradient that is zero but for rounding may step the other way (2 lr), as between thread counts
            assert torch.allclose(member.model.state_dict()[name], value, atol=2.5 * config.lr), name
    assert len({m.history[-1]["test_loss"] for m in stacked}) == 4  # the seeds and the data differ


def test_only_configs_that_differ_by_seed_and_carry_no_state_of_their_own_stack():
    base = tiny_config()
    assert stack_key(base) == stack_key(base.replace(seed=3)) != stack_key(base.replace(lr=0.01))
    assert stackable(base) and stackable(tiny_config("mlp"))
    assert not stackable(base.replace(codebook_size=4, latent="codebook"))
    assert not stackable(base.replace(init_from=base, freeze=("encoder",)))
    assert stack_key(base) == stack_key(base.replace(binarize=True))  # K's two tracks: the data differs
    with pytest.raises(ValueError, match="differ only by seed"):
        train_stacked([base, base.replace(lr=0.01)], progress=False)


def test_run_many_trains_fresh_seeds_stacked_and_keeps_each_as_its_own_run(runs, monkeypatch):
    stacked_groups = []
    real = cache.train_stacked
    monkeypatch.setattr(cache, "train_stacked", lambda group, **kw: stacked_groups.append(group) or real(group, **kw))
    configs = {s: tiny_config(seed=s, epochs=4) for s in (0, 1, 2)}
    results = run_many({**configs, "other": tiny_config(lr=0.01)}, progress=False)
    assert [len(g) for g in stacked_groups] == [3] and all(not r.from_cache for r in results.values())
    for s, config in configs.items():
        assert run(config.replace(epochs=2), progress=False).from_cache  # its kept half-way state
        assert run(config, progress=False).history == results[s].history
    resumed = run(configs[0].replace(epochs=8), progress=False)  # a member resumes alone
    alone = train(configs[0].replace(epochs=8), progress=False)
    assert resumed.history[-1]["test_loss"] == pytest.approx(alone.history[-1]["test_loss"], rel=1e-3)
    assert run_many(configs, progress=False)[0].from_cache and len(stacked_groups) == 1  # nothing trains again
