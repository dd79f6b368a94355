"""Runs of one model that differ only by seed train as one stacked model, and each ends where its
separate run ends, up to float rounding; the cache keeps each member as its own run."""

import pytest
import torch

import geovae_core.cache as cache
from conftest import tiny_config
from geovae_core import ExperimentConfig, train
from geovae_core.cache import run, run_many
from geovae_core.stacking import stack_key, stackable, stacks, train_stacked


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


@pytest.mark.parametrize(
    "family, changes",
    [
        ("shallow_mlp", {}),  # K's VAE: [mu; log sigma^2] in blocks of the largest z
        ("shallow_mlp", {"latent": "point", "loss_terms": (("recon", 1.0),)}),  # K's AE: tanh(z)
        ("mlp", {"optimizer": "adam"}),
    ],
)
def test_members_of_different_latent_sizes_padded_to_the_largest_end_where_their_separate_runs_end(family, changes):
    configs = [tiny_config(family, latent_dim=z, seed=s, **changes) for z, s in ((2, 0), (5, 1), (3, 2))]
    configs.append(configs[0].replace(binarize=True))
    kept = [{} for _ in configs]
    keeps = [lambda epoch, state, i=i: kept[i].setdefault(epoch, state) for i in range(len(configs))]
    stacked = train_stacked(configs, progress=False, keeps=keeps)
    for config, member, states in zip(configs, stacked, kept):
        alone_states = {}
        alone = train(config, progress=False, keep=alone_states.setdefault)
        assert member.model.decoder[0].in_features == config.latent_dim  # the member's own shape, unpadded
        for a, b in zip(_plain(alone.history), _plain(member.history), strict=True):
            assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
        for name, value in alone.model.state_dict().items():
            assert torch.allclose(member.model.state_dict()[name], value, atol=2.5 * config.lr), name
        own, theirs = alone_states[config.epochs]["optimizer"]["state"], states[config.epochs]["optimizer"]["state"]
        for index, entry in own.items():  # the kept optimiser state: the member's own, in its own shapes
            for k, v in entry.items():
                assert theirs[index][k].shape == v.shape, (index, k)
    assert len({m.history[-1]["test_loss"] for m in stacked}) == 4  # the sizes, seeds and data differ


def test_padding_puts_each_block_of_the_latent_axis_at_a_multiple_of_the_largest_size():
    from geovae_core.stacking import pad, unpad

    head = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(4, 3)  # [mu; logvar] rows of z = 2, 3 inputs
    padded = pad(head, (10, 3), 2, 5)
    assert torch.equal(padded[0:2], head[0:2]) and torch.equal(padded[5:7], head[2:4])
    assert not padded[2:5].any() and not padded[7:10].any()
    assert torch.equal(unpad(padded, (4, 3), 2, 5), head)
    assert torch.equal(pad(head, (4, 3), 2, 2), head)


def test_only_configs_that_differ_by_seed_and_carry_no_state_of_their_own_stack():
    base = tiny_config()
    assert stack_key(base) == stack_key(base.replace(seed=3)) != stack_key(base.replace(lr=0.01))
    assert stackable(base) and stackable(tiny_config("mlp"))
    assert not stackable(base.replace(codebook_size=4, latent="codebook"))
    assert not stackable(base.replace(init_from=base, freeze=("encoder",)))
    assert stack_key(base) == stack_key(base.replace(binarize=True))  # K's two tracks: the data differs
    with pytest.raises(ValueError, match="differ only by seed"):
        train_stacked([base, base.replace(lr=0.01)], progress=False)
    # latent sizes stack where a step costs its floor (a GPU), not where it costs its arithmetic (a CPU)
    assert stack_key(base) != stack_key(base.replace(latent_dim=7))
    assert stack_key(base, padded=True) == stack_key(base.replace(latent_dim=7, seed=2), padded=True)
    assert stack_key(base.replace(device="cuda")) == stack_key(base.replace(device="cuda", latent_dim=7))
    conv = ExperimentConfig(model="conv", dataset="celeba", latent_dim=8)
    assert stack_key(conv, padded=True) != stack_key(conv.replace(latent_dim=16), padded=True)


def _record_groups(monkeypatch) -> list:
    stacked_groups = []
    real = cache.train_stacked
    monkeypatch.setattr(cache, "train_stacked", lambda group, **kw: stacked_groups.append(group) or real(group, **kw))
    return stacked_groups


def test_run_many_on_the_cpu_trains_each_seed_alone(runs, monkeypatch):
    stacked_groups = _record_groups(monkeypatch)
    configs = {s: tiny_config(seed=s, epochs=2) for s in (0, 1)}
    results = run_many(configs, progress=False)
    assert stacked_groups == [] and all(not r.from_cache for r in results.values())
    assert not stacks(configs[0]) and stacks(configs[0].replace(device="cuda"))
    assert not stacks(configs[0].replace(device="cuda", model="conv_map"))  # not stackable anywhere


def test_run_many_trains_fresh_seeds_stacked_and_keeps_each_as_its_own_run(runs, monkeypatch):
    monkeypatch.setattr(cache, "stacks", stackable)  # as on a GPU, on this CPU
    stacked_groups = _record_groups(monkeypatch)
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
