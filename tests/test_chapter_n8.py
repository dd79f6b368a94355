"""N8's measures: the step shrink and its baselines, smooth paths, the mix's kinds, the drift hook
and the runs the chapter trains (tiny tensors and a tiny model; no notebook, no judge)."""

import math

import nbformat
import torch

from conftest import tiny_config
from geovae_core import dependencies
from geovae_core.chapters import n8
from geovae_core.checkpoints import code_modules
from geovae_core.codebook import centre_step_hook, drift_hook
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
    assert out["v_relative"] == 4.0 and not n8.ANNEALS.passes(out["v_relative"])
    assert out["bias_relative"] == 1.0 and not n8.ANNEALS.passes(out["bias_relative"])
    assert n8.ANNEALS.passes(out["annealed_relative"])  # the same drift under 1/t does anneal against itself
    annealed = n8.annealing(_history([4.0, 4.0, 1.0, 1.0, 0.25, 0.25], falling, falling))
    assert annealed["v_relative"] == 0.0625 / 0.25 and n8.ANNEALS.passes(annealed["v_relative"])
    assert math.isnan(n8.annealing(_history([], [], []))["v_relative"])  # one epoch: no step after the first


def test_smooth_share_judges_each_path_and_leaves_out_paths_that_do_not_move():
    alpha = torch.linspace(0, 1, n8.PATH_STEPS).view(1, -1, 1, 1, 1)
    even = alpha * torch.ones(3, 1, 1, 4, 4)
    jump = torch.cat([torch.zeros(1, 6, 1, 4, 4), torch.ones(1, n8.PATH_STEPS - 6, 1, 4, 4)], dim=1)
    assert n8.smooth_share(even) == 1.0
    assert n8.smooth_share(torch.cat([even, jump])) == 0.75
    assert n8.smooth_share(torch.cat([jump, torch.zeros(1, n8.PATH_STEPS, 1, 4, 4)])) == 0.0
    assert math.isnan(n8.smooth_share(torch.zeros(2, n8.PATH_STEPS, 1, 4, 4)))


def test_the_mix_needs_two_of_each_kind_and_one_alike_pair():
    assert n8.kinds_present({"recognised": 5, "unreadable": 2, "alike pairs": 1}) == 3.0
    assert n8.kinds_present({"recognised": 5, "unreadable": 1, "alike pairs": 4}) == 2.0
    assert n8.kinds_present({"recognised": 1, "unreadable": 0, "alike pairs": 0}) == 0.0
    assert n8.A_MIX.passes(3.0) and not n8.A_MIX.passes(2.0)


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
    assert {c.figure_label for c in n8.CLAIMS.values()} <= {f"n8-fig{k}" for k in ("32", "33", "35", "36")}
    for claim in n8.CLAIMS.values():
        assert f":name: {claim.figure_label}" in text, claim.id
    assert set(n8.SMOOTH_IDS.values()) | set(n8.ANNEAL_IDS.values()) <= set(n8.CLAIMS)
