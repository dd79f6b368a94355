import math

import pytest
import torch

from geovae_core import ExperimentConfig
from geovae_core.cache import run
from geovae_core.codebook import (
    ClusterCentres,
    Codebook,
    as_vectors,
    centre_step_hook,
    nearest_codes,
    perplexity,
    usage,
)
from geovae_core.losses import LOSS_TERMS
from geovae_core.models import build_model


def test_nearest_codes_agree_with_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    vectors, codes = torch.randn(200, 6, generator=g), torch.randn(17, 6, generator=g)
    brute = torch.tensor([min(range(17), key=lambda k: float(((v - codes[k]) ** 2).sum())) for v in vectors])
    assert torch.equal(nearest_codes(vectors, codes), brute)


def test_feature_maps_use_channels_as_the_vector():
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    vectors = as_vectors(x)
    assert vectors.shape == (8, 3) and vectors[1].tolist() == x[0, :, 0, 1].tolist()


def test_quantised_maps_keep_their_shape_and_the_pull_is_per_image():
    book = Codebook(5, 3).eval()
    book.codes.data = torch.eye(5, 3)
    mu = torch.zeros(2, 3, 2, 2)
    mu[0, 0] = 0.9  # every position of image 0 is near code 0
    out = book(mu)
    assert out["quantized"].shape == mu.shape and out["indices"].shape == (2, 2, 2)
    assert out["indices"][0].unique().tolist() == [0]
    assert out["pull"].shape == (2,) and out["pull"][0].item() == pytest.approx(4 * 0.01)


def test_the_pull_loss_moves_both_the_code_and_the_vector():
    book = Codebook(2, 2)
    book.initialise(torch.tensor([[0.0, 0.0], [5.0, 5.0]]))
    book.codes.data = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    mu = torch.tensor([[1.0, 0.0]], requires_grad=True)
    book(mu)["pull"].sum().backward()
    assert mu.grad.tolist() == [[2.0, 0.0]] and book.codes.grad[0].tolist() == [-2.0, 0.0]
    assert book.codes.grad[1].abs().sum() == 0


def _ema_book(codes, decay=0.8):
    book = Codebook(len(codes), len(codes[0]), decay=decay)
    book.initialise(torch.tensor(codes))
    book.codes.copy_(torch.tensor(codes))
    return book.train()


def test_ema_moves_a_code_toward_its_members_by_p_s_rule():
    book = _ema_book([[0.0, 0.0], [10.0, 10.0]])
    members = torch.tensor([[2.0, 0.0], [2.0, 2.0]])
    book(members)  # e <- e + alpha (mean - e), alpha = 1 - decay = 0.2
    assert book.codes[0].tolist() == pytest.approx([0.4, 0.2])
    distances = []
    for _ in range(25):
        book(members)
        distances.append(float((book.codes[0] - members.mean(0)).norm()))
    assert all(b < a for a, b in zip(distances, distances[1:])) and distances[-1] < 0.01


def test_a_code_never_assigned_does_not_move_under_ema():
    book = _ema_book([[0.0, 0.0], [10.0, 10.0], [-7.0, 3.0]], decay=0.99)
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 0.5
    for _ in range(2000):
        book(data)
    assert book.codes[1].tolist() == [10.0, 10.0] and book.codes[2].tolist() == [-7.0, 3.0]


def test_codes_start_at_k_distinct_vectors_of_the_data():
    data = torch.randn(50, 3, generator=torch.Generator().manual_seed(0)) + 100
    book = Codebook(40, 3, decay=0.9)
    book.initialise(data, torch.Generator().manual_seed(0))
    assert book.codes.min() > 90 and len(torch.unique(book.codes, dim=0)) == 40
    assert all(any(torch.equal(c, v) for v in data) for c in book.codes)


def test_initialisation_refuses_too_few_distinct_vectors():
    with pytest.raises(ValueError, match="needs 5 distinct vectors, got 2"):
        Codebook(5, 2).initialise(torch.tensor([[0.0, 0.0], [1.0, 1.0]] * 10))


def test_a_codebook_used_in_training_before_initialisation_says_so():
    with pytest.raises(RuntimeError, match="before initialise"):
        Codebook(3, 2).train()(torch.randn(4, 2))


def test_a_large_codebook_is_initialised_from_several_batches_of_encodings():
    model, _ = _codebook_model("codebook", size=300)
    images = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    model.initialise_codebook(images, torch.Generator().manual_seed(0), chunk=128)
    codes = model.codebook.codes
    assert len(torch.unique(codes, dim=0)) == 300 and bool(model.codebook.initialised)
    assert torch.cdist(codes, codes).add(torch.eye(300) * 1e9).min() > 0


def test_nearest_codes_stay_exact_far_from_the_origin():
    g = torch.Generator().manual_seed(0)
    for offset in (1e3, 1e4):
        vectors, codes = torch.randn(200, 6, generator=g) + offset, torch.randn(17, 6, generator=g) + offset
        exact = (vectors.double()[:, None] - codes.double()[None]).pow(2).sum(-1).argmin(1)
        assert torch.equal(nearest_codes(vectors, codes), exact)


def test_usage_and_perplexity_on_hand_made_assignments():
    assert usage(torch.tensor([0, 0, 1, 1]), 4) == 0.5
    assert perplexity(torch.tensor([0, 0, 1, 1]), 4) == pytest.approx(2.0)
    assert perplexity(torch.tensor([3, 3, 3]), 4) == pytest.approx(1.0)
    assert perplexity(torch.arange(8), 8) == pytest.approx(8.0)
    assert perplexity(torch.tensor([0, 0, 0, 1]), 2) == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    )


def _codebook_model(latent, decay=None, size=4):
    config = ExperimentConfig(
        model="mlp",
        latent=latent,
        widths=(16,),
        latent_dim=3,
        activation="relu",
        init_std=None,
        codebook_size=size,
        codebook_decay=decay,
        loss_terms=(("recon", 1.0), ("pull", 0.1)),
    )
    torch.manual_seed(0)
    model = build_model(config, (1, 28, 28)).train()
    return model, config


def _initialised(model):
    model.initialise_codebook(
        torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)), torch.Generator().manual_seed(0)
    )
    return model


def test_path_a_decodes_mu_and_path_b_decodes_the_code_straight_through():
    x = torch.rand(8, 1, 28, 28)
    path_a = _initialised(_codebook_model("codebook")[0])
    out = path_a(x)
    assert torch.equal(out["z"], out["mu"]) and out["indices"].shape == (8,) and out["pull"].shape == (8,)
    path_b = _initialised(_codebook_model("quantized")[0])
    out = path_b(x)
    assert torch.allclose(out["z"], out["quantized"])
    out["logits"].sum().backward()
    assert path_b.encoder[1][0].weight.grad.abs().sum() > 0  # the straight-through gradient reaches the encoder


def test_the_pull_term_enters_the_loss_with_its_weight():
    from geovae_core.losses import loss_terms

    model, config = _codebook_model("codebook")
    _initialised(model)
    x = torch.rand(8, 1, 28, 28)
    terms = loss_terms(x, None, model(x), config)
    assert terms["loss"].item() == pytest.approx((terms["recon"] + 0.1 * terms["pull"]).item(), rel=1e-6)


def test_distinct_codes_count_codes_closer_than_the_data_s_own_spacing_once():
    from geovae_core.codebook import distinct_codes

    grid = torch.stack(torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij"), -1).view(-1, 2)
    # the encodings sit on a unit grid: nearest-neighbour distance 1
    codes = torch.tensor([[0.0, 0.0], [0.0, 0.5], [5.0, 5.0], [5.0, 5.9], [9.0, 0.0]])
    assert distinct_codes(codes, grid) == 3
    assert distinct_codes(torch.zeros(7, 2), grid) == 1
    assert distinct_codes(grid[::11], grid) == len(grid[::11])  # codes spread like the data: all distinct
    assert distinct_codes(codes + 1e4, grid + 1e4) == 3


def test_the_residual_family_builds_a_codebook_autoencoder():
    from geovae_core import ExperimentConfig
    from geovae_core.models import build_model

    config = ExperimentConfig(
        model="resmlp",
        latent="codebook",
        widths=(32, 32, 32),
        latent_dim=4,
        activation="relu",
        init_std=None,
        codebook_size=10,
        codebook_decay=0.99,
    )
    model = _initialised(build_model(config, (1, 28, 28)).train())
    out = model(torch.rand(6, 1, 28, 28))
    assert out["logits"].shape == (6, 784) and out["indices"].shape == (6,)
    assert sum(isinstance(m, torch.nn.Module) and type(m).__name__ == "Residual" for m in model.modules()) == 6


@pytest.mark.parametrize("map_shape", [(2, 2), (4, 5), (7, 7)])
def test_the_vq_ae_quantises_every_position_of_its_feature_map(map_shape):
    from geovae_core import ExperimentConfig
    from geovae_core.models import build_model

    for latent in ("codebook", "quantized"):
        config = ExperimentConfig(
            model="conv_map",
            latent=latent,
            widths=(8, 16),
            latent_dim=6,
            map_shape=map_shape,
            activation="relu",
            init_std=None,
            codebook_size=12,
            codebook_decay=0.99,
        )
        model = _initialised(build_model(config, (1, 28, 28)).train())
        out = model(torch.rand(3, 1, 28, 28))
        assert out["mu"].shape == (3, 6, *map_shape) and out["indices"].shape == (3, *map_shape)
        assert out["logits"].shape == (3, 784) and out["pull"].shape == (3,)
        expected = out["mu"] if latent == "codebook" else out["quantized"]
        assert torch.allclose(out["z"], expected)


def _centres(codes) -> ClusterCentres:
    centres = ClusterCentres(len(codes), len(codes[0])).eval()
    centres.codes.data = torch.tensor(codes)
    return centres


def test_each_centre_pulls_its_nearest_pool_encoding_and_only_that_one():
    centres = _centres([[0.0, 0.0], [10.0, 10.0]])
    pool = torch.tensor([[1.0, 0.0], [9.0, 9.0], [5.0, 5.0], [0.5, 0.5]], requires_grad=True)
    out = centres(pool)
    assert out["centre_indices"].tolist() == [3, 1]
    assert out["centre_pull"].tolist() == pytest.approx([0.5, 2.0])
    out["centre_pull"].sum().backward()
    assert pool.grad[[0, 2]].abs().sum() == 0
    assert pool.grad[3].tolist() == [1.0, 1.0] and pool.grad[1].tolist() == [-2.0, -2.0]
    assert centres.codes.grad.tolist() == [[-1.0, -1.0], [2.0, 2.0]]


def test_centres_record_their_state_at_the_first_training_step():
    centres = ClusterCentres(3, 4)
    assert centres.initial.isnan().all()
    start = centres.codes.detach().clone()
    centres.train()(torch.randn(10, 4))
    centres.codes.data += 1.0
    centres(torch.randn(10, 4))
    assert torch.equal(centres.initial, start)


def _centre_config(**changes) -> ExperimentConfig:
    base = dict(
        model="mlp",
        latent="centres",
        latent_dim=4,
        widths=(16,),
        activation="relu",
        likelihood="mse",
        codebook_size=3,
        init_std=None,
    )
    return ExperimentConfig(**{**base, **changes})


def _centre_model():
    return build_model(_centre_config(), (1, 28, 28))


def _gradient_reaches(model, loss) -> dict:
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {
        name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
        for name, module in (("encoder", model.encoder), ("decoder", model.decoder), ("centres", model.codebook))
    }


def test_gradients_reach_the_modules_r_names_for_each_term():
    torch.manual_seed(0)
    model = _centre_model()
    x, pool = torch.rand(8, 1, 28, 28), torch.rand(5, 1, 28, 28)
    out = model(x, pool)
    assert out["mu"].shape == (8, 4) and out["matched"].shape == (3, 1, 28, 28)
    assert all(any(torch.equal(m, p) for p in pool) for m in out["matched"])
    config = ExperimentConfig(model="mlp", likelihood="mse")
    terms = {name: LOSS_TERMS[name](x, None, out, config).mean() for name in ("recon", "centre_pull", "centre_recon")}
    assert _gradient_reaches(model, terms["centre_pull"]) == {"encoder": True, "decoder": False, "centres": True}
    assert _gradient_reaches(model, terms["centre_recon"]) == {"encoder": False, "decoder": True, "centres": True}
    assert _gradient_reaches(model, terms["recon"]) == {"encoder": True, "decoder": True, "centres": False}


def test_without_a_pool_the_batch_is_the_pool_and_other_latents_refuse_one():
    model = _centre_model()
    x = torch.rand(6, 1, 28, 28)
    out = model(x)
    assert torch.equal(out["matched"], x[out["centre_indices"]])
    plain = build_model(ExperimentConfig(model="mlp", latent="point", widths=(16,)), (1, 28, 28))
    with pytest.raises(ValueError, match="centres"):
        plain(x, x)


def test_training_with_a_pool_records_the_centre_steps(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path))
    config = _centre_config(
        codebook_size=2,
        pool_size=32,
        optimizer="adam",
        lr=1e-3,
        loss_terms=(("recon", 1.0), ("centre_pull", 1.0)),
        epochs=3,
        train_size=256,
        test_size=64,
        batch_size=64,
    )
    result = run(config, hooks=centre_step_hook(), progress=False)
    steps = result.curve("centre_step")
    assert len(steps) == 3 and all(s > 0 for s in steps)
    assert "train_centre_pull" in result.final and "test_centre_pull" in result.final
    assert not result.model.codebook.initial.isnan().any()
    total = sum(steps)
    drift = (result.model.codebook.codes.detach() - result.model.codebook.initial).norm(dim=1).mean()
    assert float(drift) <= total + 1e-5  # the triangle inequality over the epochs


def test_distinct_mask_keeps_the_first_of_each_close_group_and_agrees_with_the_count():
    from geovae_core.codebook import distinct_codes, distinct_mask

    grid = torch.stack(torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij"), -1).view(-1, 2)
    codes = torch.tensor([[0.0, 0.0], [0.0, 0.5], [5.0, 5.0], [5.0, 5.9], [9.0, 0.0]])
    assert distinct_mask(codes, grid).tolist() == [True, False, True, False, True]
    assert distinct_codes(codes, grid) == int(distinct_mask(codes, grid).sum()) == 3


def test_a_centres_state_loads_as_a_codebook_started_at_the_centres():
    """P App. A.4.1's relaxed stage starts from the centres' run: its state loads into a codebook
    (gradient or EMA), whose codes count as initialised and are not reset by the training loop."""
    centres = build_model(_centre_config(codebook_size=4), (1, 28, 28))
    centres.codebook.codes.data = torch.arange(16.0).view(4, 4)
    state = centres.state_dict()
    assert "codebook.initial" in state
    for decay in (None, 0.99):
        model = build_model(_centre_config(codebook_size=4, latent="codebook", codebook_decay=decay), (1, 28, 28))
        model.load_state_dict(state)
        assert bool(model.codebook.initialised) and torch.equal(model.codebook.codes, torch.arange(16.0).view(4, 4))
        model.initialise_codebook(torch.rand(64, 1, 28, 28), torch.Generator().manual_seed(0))
        assert torch.equal(model.codebook.codes, torch.arange(16.0).view(4, 4))
    fresh = build_model(_centre_config(codebook_size=4, latent="codebook"), (1, 28, 28)).state_dict()
    assert "codebook.initial" not in fresh and not bool(fresh["codebook.initialised"])


def test_p_s_protocol_trains_the_centres_then_relaxes_them_into_a_codebook(monkeypatch, tmp_path):
    from geovae_core.training import start_training, warm_start_weights

    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path))
    common = dict(optimizer="adam", lr=1e-3, epochs=2, train_size=256, test_size=64, batch_size=64, codebook_size=3)
    centres = _centre_config(pool_size=32, loss_terms=(("recon", 1.0), ("centre_pull", 0.1)), **common)
    relaxed = centres.replace(latent="codebook", pool_size=0, loss_terms=(("recon", 1.0), ("pull", 0.1)))
    relaxed = relaxed.replace(init_from=centres)
    first = run(centres, progress=False)
    model = build_model(relaxed, (1, 28, 28))
    model.load_state_dict(warm_start_weights(relaxed, (1, 28, 28), first.model.state_dict()))
    start_training(model, relaxed, torch.rand(256, 1, 28, 28))
    assert torch.equal(model.codebook.codes, first.model.codebook.codes)  # the relaxed stage starts at the centres
    second = run(relaxed, progress=False)
    assert "train_pull" in second.final and second.model.codebook.codes.shape == (3, 4)
    assert not torch.equal(second.model.codebook.codes, first.model.codebook.codes)  # and the codes move on
