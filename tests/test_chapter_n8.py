"""N8's measures: the step shrink and its baselines, the averaged centre that anneals, the mix's
kinds read continuously, the drift hook, the controls per seed and the runs the chapter trains
(tiny tensors and tiny models, a stand-in judge; no notebook)."""

import math
from types import SimpleNamespace

import nbformat
import pytest
import torch

from conftest import tiny_config
from geovae_core import dependencies
from geovae_core.chapters import n8, n8_claims
from geovae_core.checkpoints import code_modules
from geovae_core.codebook import centre_step_hook, drift_hook
from geovae_core.data import experiment_split
from geovae_core.metrics import alike_pairs
from geovae_core.profiles import resolve
from geovae_core.training import train


def test_shrink_compares_the_last_third_with_the_first():
    assert n8.shrink([1.0] * 9) == 1.0
    assert n8.shrink([4.0, 4.0, 4.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0]) == 0.25
    assert n8.shrink([1.0, 2.0, 3.0]) == 3.0  # growing steps shrink by more than 1
    assert n8.shrink([2.0]) == 1.0 and math.isnan(n8.shrink([]))
    assert n8.scaled([2.0, 2.0, 4.0, 1.0, 1.0, 1.0]) == [1.0, 1.0, 2.0, 0.5, 0.5, 0.5]


def _history(v_steps, drift_steps, bias_steps):
    """A run's history as the hooks record it: v's step, and positions whose steps are the given ones."""
    rows, encoding, bias = [], [0.0, 0.0], [0.0]
    for epoch, (v, e, b) in enumerate(zip([0.5, *v_steps], [0.0, *drift_steps], [0.0, *bias_steps]), start=1):
        encoding, bias = [encoding[0] + e, encoding[1]], [bias[0] - b]
        rows.append({"epoch": epoch, "centre_step": v, "mean_encoding": encoding, "encoder_bias": bias})
    return rows


def test_annealing_sets_v_against_the_drift_of_the_encodings():
    falling = [8.0, 8.0, 4.0, 4.0, 2.0, 2.0]  # shrink 0.25
    steady = [1.0] * 6
    out = n8.annealing(_history(steady, falling, falling))
    assert out["v"] == 1.0 and out["encoding"] == 0.25 and out["bias"] == 0.25
    assert out["v_relative"] == 4.0 and not n8_claims.ANNEALS.passes(out["v_relative"])
    assert out["bias_relative"] == 1.0 and not n8_claims.ANNEALS.passes(out["bias_relative"])
    assert not n8_claims.FALLS.passes(out["v"]) and n8_claims.FALLS.passes(out["bias"])
    annealed = n8.annealing(_history([4.0, 4.0, 1.0, 1.0, 0.25, 0.25], falling, falling))
    assert annealed["v_relative"] == 0.0625 / 0.25 and n8_claims.ANNEALS.passes(annealed["v_relative"])
    assert math.isnan(n8.annealing(_history([], [], []))["v_relative"])  # one epoch: no step after the first


def _centres_config(size=1, **changes):
    terms = (("recon", 1.0), ("centre_pull", 1.0))
    return tiny_config("mlp", latent="centres", codebook_size=size, pool_size=16, loss_terms=terms, **changes)


def test_a_running_mean_of_encodings_anneals_and_its_batch_means_do_not_drift():
    model = train(_centres_config(), progress=False).model
    images = experiment_split(_centres_config())[0]
    seen = set()
    for seed in range(3):
        out = n8.averaged_centre(model, images, 16, 64, torch.Generator().manual_seed(seed))
        assert n8_claims.FALLS.passes(out["shrink"]) and out["shrink"] < 0.5
        assert n8_claims.ANNEALS.passes(out["relative"])
        seen.add(out["shrink"])
    assert len(seen) == 3  # each draw of data its own value


def test_the_mix_margin_passes_exactly_where_the_counts_do():
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        p = torch.rand(6, generator=g).double()
        alike = float(torch.rand(1, generator=g) * 2)
        counts = (p >= 0.9).sum() >= 2 and (p < 0.5).sum() >= 2 and alike < 1
        assert n8_claims.A_MIX.passes(n8_claims.mix_margin(p, alike)) == bool(counts)
    assert n8_claims.mix_margin(torch.tensor([0.95, 0.99, 0.1, 0.2]), 0.5) == pytest.approx(min(0.95 / 0.9, 2.5, 2))


def test_the_most_alike_pair_is_below_one_exactly_when_a_pair_is_alike():
    real = experiment_split(_centres_config())[2]
    for k in (2, 5, 20):
        images = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(k))[:k]]
        images = torch.cat([images, images[:1] + 0.01])  # and a near copy of the first
        assert (n8_claims.most_alike(images, real) < 1) == (alike_pairs(images, real) >= 1)
        assert (n8_claims.most_alike(images[:-1], real) < 1) == (alike_pairs(images[:-1], real) >= 1)


def test_pixel_shuffled_keeps_each_image_s_ink_but_not_its_order():
    images = torch.rand(4, 1, 6, 6)
    shuffled = n8.pixel_shuffled(images, torch.Generator().manual_seed(0))
    assert shuffled.shape == images.shape
    assert torch.equal(shuffled.flatten(1).sort(dim=1).values, images.flatten(1).sort(dim=1).values)
    assert not torch.equal(shuffled, images)


def test_worst_takes_the_least_favourable_dataset_and_keeps_nan():
    assert n8.worst([0.95, 0.8]) == 0.8 and n8.worst([0.3, 2.0], highest=True) == 2.0
    assert math.isnan(n8.worst([0.9, math.nan]))


def test_the_drift_hook_records_positions_whose_steps_the_claim_reads():
    terms = (("recon", 1.0), ("centre_pull", 1.0))
    config = tiny_config("mlp", latent="centres", codebook_size=1, pool_size=16, loss_terms=terms, epochs=3)
    run = train(config, {**centre_step_hook(), **drift_hook()}, progress=False)
    rows = run.history
    assert [len(row["mean_encoding"]) for row in rows] == [config.latent_dim] * 3
    assert [len(row["encoder_bias"]) for row in rows] == [config.latent_dim] * 3
    drift = n8.steps_of(rows, "mean_encoding")
    assert len(drift) == 2 and all(step > 0 for step in drift)
    out = n8.annealing(rows)
    assert all(math.isfinite(out[k]) for k in ("v", "encoding", "bias", "v_relative"))


def test_the_hooked_runs_code_version_is_every_runs_not_the_chapters():
    """Editing the chapter's page code (its verdicts, figures, prose) must not retrain its runs."""
    _, hooks = n8.experiments(resolve("N8", n8.SETTINGS, "smoke"))["centres", "mnist", 0]
    assert set(hooks) == {"centre_step", "drift"}
    assert code_modules(hooks) == code_modules()
    assert not any(name.startswith("chapters") for name in code_modules(hooks))


def test_the_chapter_trains_one_centre_per_dataset_twenty_on_mnist_and_the_mse_to_zero_ae():
    params = resolve("N8", n8.SETTINGS, "smoke", seeds=[0, 1])
    runs = n8.experiments(params)
    assert len(runs) == 2 * (len(n8.DATASETS) + 2)
    config, hooks = runs["centres", "celeba", 1]
    assert config.latent == "centres" and config.codebook_size == 1 and config.epochs == params.celeba_epochs
    assert set(hooks) == {"centre_step", "drift"}
    assert runs["many", 0].codebook_size == params.codebook_size and runs["many", 0].epochs == params.epochs
    assert dict(runs["zero", 0].loss_terms) == {"recon": 1.0, "centering": params.zero_weight}
    assert runs["zero", 0].latent == "point" and runs["zero", 0].test_size == params.test_size


def test_every_claim_names_a_figure_the_notebook_draws():
    notebook = nbformat.read(dependencies.PACKAGE.parent / "notebooks" / f"{n8.CHAPTER.notebook}.ipynb", 4)
    text = "\n".join(c.source for c in notebook.cells)
    claims = n8_claims.CLAIMS
    assert {c.figure_label for c in claims.values()} <= {f"n8-fig{k}" for k in ("32", "33", "35", "36")}
    for claim in claims.values():
        assert f":name: {claim.figure_label}" in text, claim.id
    ids = (n8_claims.SMOOTH_IDS, n8_claims.FALL_IDS, n8_claims.ANNEAL_IDS)
    assert set().union(*(i.values() for i in ids)) <= set(claims) and len(claims) == 10


class _Judge:
    """A stand-in for the book's judge: its probability grows with an image's solid pixels (real
    digits read, an untrained decoder's grey does not), its 'excess' with how far an image's mean
    is from the digits' (about 0.13)."""

    n = 40

    def __init__(self, test_images):
        self.data = SimpleNamespace(test_images=test_images)

    def probabilities(self, images):
        solid = (images.flatten(1) >= 0.7).sum(1)
        top = (1 - 0.5 * torch.exp(-solid / 30) - 0.01 * images.flatten(1).mean(1)).view(-1, 1)
        return torch.cat([top, (1 - top).expand(-1, 9) / 9], dim=1)

    def score(self, images):
        return {"excess": 1000 * abs(float(images.mean()) - 0.13), "resolution": 1.0}


def test_the_controls_are_real_per_seed_one_pair_for_every_claim(monkeypatch):
    monkeypatch.setattr(n8_claims, "DATASETS", ("mnist",))
    monkeypatch.setattr(n8_claims, "GROUPS", {"digits": ("mnist",), "celeba": ("mnist",)})
    seeds, hooks, zero = [0, 1], {**centre_step_hook(), **drift_hook()}, (("recon", 1.0), ("centering", 1.0))
    runs = {}
    for s in seeds:
        runs["centres", "mnist", s] = train(_centres_config(seed=s, epochs=12), hooks, progress=False)
        runs["many", s] = train(_centres_config(4, seed=s), progress=False)
        runs["zero", s] = train(tiny_config("mlp", latent="point", loss_terms=zero, seed=s), progress=False)
    x_train, _, x_test, _ = experiment_split(_centres_config().replace(test_size=1000))
    params = SimpleNamespace(seeds=seeds, batch_size=32, codebook_size=4)
    measuring = n8_claims.Measuring(params, _Judge(x_test), {"mnist": x_test[:300]}, {"mnist": x_train[:200]})
    measuring(runs, final=True)
    each = {s: measuring.controls(runs, s) for s in seeds}
    assert set(each[0]) == set(n8_claims.CLAIMS)
    for claim, ((absent, absent_text), (present, present_text)) in each[0].items():
        (other_absent, other_absent_text), (other_present, other_present_text) = each[1][claim]
        assert (absent_text, present_text) == (other_absent_text, other_present_text), claim
        assert absent != other_absent and present != other_present, claim
    for s in seeds:
        controls = each[s]
        (real, _), (at_init, _) = controls["N8-mse-to-zero-collapses"]
        assert not n8_claims.COLLAPSED.passes(real) and n8_claims.COLLAPSED.passes(at_init)
        (at_init, _), (real, _) = controls["N8-centre-ae-does-not-collapse"]
        assert not n8_claims.NOT_COLLAPSED.passes(at_init) and n8_claims.NOT_COLLAPSED.passes(real)
        (theirs, _), (_, _) = controls["N8-mse-to-zero-far-worse"]
        assert 0 < theirs and not n8_claims.FAR_WORSE.passes(theirs)  # another seed's model of the same kind
        (_, _), (averaged, _) = controls["N8-centre-anneals"]
        assert n8_claims.ANNEALS.passes(averaged)
        (_, _), (averaged, _) = controls["N8-centre-step-falls"]
        assert n8_claims.FALLS.passes(averaged)
        (one_kind, _), (_, _) = controls["N8-twenty-vectors-a-mix"]
        assert not n8_claims.A_MIX.passes(one_kind)
