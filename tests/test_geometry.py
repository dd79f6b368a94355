import math

import pytest
import torch

from conftest import tiny_config
from geovae_core import ExperimentConfig
from geovae_core.geometry import (
    EXPOSURES,
    NearestImageDecoder,
    _umap_kernels_cached,
    cv_nnd,
    distances,
    dynamic_latent_coverage,
    fit_ellipsoid,
    interpolate,
    interpolation_measures,
    latent_cv_nnd,
    nearest_image_distance,
    nearest_neighbour_sq_distances,
    perturb,
    perturbation_paths,
    perturbation_response,
    step_sizes,
    step_unevenness,
    unevenness,
)
from geovae_core.models import build_model


def _grid(n=8, d=2):
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float32)] * d, indexing="ij")
    return torch.stack([a.flatten() for a in axes], dim=1)


def test_a_regular_grid_has_cv_zero():
    assert nearest_neighbour_sq_distances(_grid()).unique().tolist() == [1.0]
    assert cv_nnd(_grid()).item() == 0.0


def test_cv_of_a_known_point_set():
    z = torch.tensor([[0.0], [1.0], [3.0], [7.0]])  # squared NN distances 1, 1, 4, 16
    d = torch.tensor([1.0, 1.0, 4.0, 16.0])
    assert cv_nnd(z).item() == pytest.approx((d.std() / d.mean()).item())


def test_irregular_spacing_has_a_larger_cv_than_a_jittered_grid():
    g = torch.Generator().manual_seed(0)
    jittered = _grid() + 0.05 * torch.randn(64, 2, generator=g)
    irregular = torch.cat([_grid(4) * 0.01, _grid(6) + 10])  # a tight clump beside a coarse grid
    assert 0 < cv_nnd(jittered) < 0.5 < cv_nnd(irregular)


def test_cv_is_batched_over_leading_dims():
    z = torch.randn(3, 50, 4)
    assert torch.allclose(cv_nnd(z), torch.stack([cv_nnd(z[i]) for i in range(3)]))


def test_latent_cv_nnd_compares_like_with_like():
    x = torch.rand(64, 1, 28, 28)
    torch.manual_seed(0)
    out = {}
    for latent in ("sampled", "mean", "point"):
        model = build_model(
            ExperimentConfig(model="mlp", latent=latent, widths=(32,), latent_dim=4, init_std=None, activation="relu"),
            (1, 28, 28),
        )
        out[latent] = latent_cv_nnd(model, x, batches=2, batch_size=32, draws=20)
        assert out[latent]["cv_nnd_mu"] > 0
    # both encoders with a variance are read on their own sampled codes; a plain AE has none
    assert out["sampled"]["cv_nnd_sampled"] > 0 and out["mean"]["cv_nnd_sampled"] > 0
    assert math.isnan(out["point"]["cv_nnd_sampled"])


def test_codes_equal_to_the_prior_samples_cover_fully():
    z = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    coverage, tau = dynamic_latent_coverage(z, z.clone())
    assert coverage == 1.0 and tau > 0


def test_codes_far_from_the_origin_cover_nothing():
    mu = torch.randn(300, 8, generator=torch.Generator().manual_seed(0)) * 0.1 + 50
    prior = torch.randn(300, 8, generator=torch.Generator().manual_seed(1))
    assert dynamic_latent_coverage(mu, prior)[0] == 0.0


def test_tau_skips_the_closest_neighbour():
    # points on a line at 0, 1, 3, 6, 10: with k_nn = 2, tau comes from 2nd-nearest distances only
    mu = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]])
    second = torch.tensor([3.0, 2.0, 3.0, 4.0, 7.0])  # each point's 2nd-nearest distance
    _, tau = dynamic_latent_coverage(mu, torch.zeros(1, 1), k_nn=2, eta=50)
    assert tau == pytest.approx(second.median().item())


def test_interpolation_endpoints_are_exact():
    z1, z2 = torch.randn(5), torch.randn(5)
    path = interpolate(z1, z2, 10)
    assert path.shape == (10, 5) and torch.equal(path[0], z1) and torch.allclose(path[-1], z2)
    assert torch.allclose(path[4] - path[3], (z2 - z1) / 9, atol=1e-6)


def test_perturbation_changes_one_dimension_at_a_time():
    z = torch.zeros(6)
    out = perturb(z, [2], [0.1, 1.0, 15.0])
    assert out.shape == (1, 3, 6) and out[0, :, 2].tolist() == pytest.approx([0.1, 1.0, 15.0])
    assert out[0][:, [0, 1, 3, 4, 5]].abs().sum() == 0
    codes = torch.randn(4, 6)
    batch = perturb(codes, range(3), [1.0, 2.0])
    assert batch.shape == (4, 3, 2, 6)
    expected = torch.zeros(3, 2, 6)
    for d in range(3):
        expected[d, :, d] = torch.tensor([1.0, 2.0])
    assert torch.allclose(batch - codes[:, None, None], expected.expand(4, -1, -1, -1))


def test_nearest_image_distance_is_the_rms_gap_to_the_closest_pool_image():
    pool = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
    images = torch.stack([torch.full((1, 2, 2), 0.25), torch.full((1, 2, 2), 0.9), torch.ones(1, 2, 2)])
    assert nearest_image_distance(images, pool).tolist() == pytest.approx([0.25, 0.1, 0.0], abs=1e-6)


def test_step_measures_on_hand_made_paths():
    even = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    assert step_sizes(even).tolist() == pytest.approx([0.25] * 4)
    assert step_unevenness(even) == pytest.approx(1.0)
    jump = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0]).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    assert step_unevenness(jump) == pytest.approx(4.0)
    assert math.isnan(step_unevenness(torch.zeros(4, 1, 2, 2)))  # no change: no transition to judge


def test_unevenness_is_batched_over_paths():
    even = torch.linspace(0, 1, 6).view(6, 1, 1, 1).expand(6, 1, 3, 3)
    jump = torch.tensor([0.0] * 5 + [1.0]).view(6, 1, 1, 1).expand(6, 1, 3, 3)
    noise = torch.rand(6, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    values = unevenness(torch.stack([even, jump, noise, torch.zeros(6, 1, 3, 3)]))
    assert values[0] == pytest.approx(1.0) and values[1] == pytest.approx(5.0)
    assert 1.0 < values[2] < 5.0 and torch.isnan(values[3])


def test_cv_nnd_is_exact_for_codes_far_from_the_origin():
    g = torch.Generator().manual_seed(0)
    for offset in (0.0, 1e3, 1e4):
        z = torch.randn(128, 16, generator=g) + offset  # float32 codes far from the origin
        d = (z.double()[:, None] - z.double()[None]).pow(2).sum(-1) + torch.eye(128, dtype=torch.float64) * 1e300
        exact = d.min(1).values.std() / d.min(1).values.mean()
        assert cv_nnd(z).item() == pytest.approx(exact.item(), rel=1e-9)
        assert distances(z, z[:3]).diagonal().abs().max() == 0.0


def test_an_ellipsoid_fit_recovers_the_axes_of_a_gaussian_cloud():
    g = torch.Generator().manual_seed(0)
    rotation = torch.linalg.qr(torch.randn(3, 3, generator=g))[0]
    points = (torch.randn(20000, 3, generator=g) * torch.tensor([0.5, 1.0, 3.0])) @ rotation.T + 7
    centre, radii, axes = fit_ellipsoid(points)
    assert torch.allclose(centre, torch.full((3,), 7.0), atol=0.05)
    assert torch.allclose(radii, 2 * torch.tensor([0.5, 1.0, 3.0]), rtol=0.03)
    assert abs(float(axes[:, 2] @ rotation[:, 2])) == pytest.approx(1.0, abs=1e-3)


def test_the_coverage_hook_records_coverage_and_tau_each_epoch(monkeypatch, tmp_path):
    from geovae_core.cache import run
    from geovae_core.geometry import coverage_hook

    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path))
    config = tiny_config("mlp", test_size=200)
    history = run(config, hooks=coverage_hook(size=100), progress=False).history
    assert all(0 <= row["coverage"] <= 1 and row["tau"] > 0 for row in history)


class _Linear(torch.nn.Module):
    """A "decoder" whose image is its code, reshaped: paths in code space are paths in pixels."""

    latent = "point"

    def encode(self, x):
        return x.flatten(1), None

    def decode(self, z):
        return z.view(-1, 1, 2, 2)


class _Constant(_Linear):
    """A degenerate decoder: every code decodes to the same grey image."""

    def decode(self, z):
        return torch.full((len(z), 1, 2, 2), 0.5)


def test_perturbation_paths_decode_each_dimension_and_delta():
    paths = perturbation_paths(_Linear(), torch.zeros(3, 4), [0, 2], [1.0, 2.0, 3.0])
    assert paths.shape == (3, 2, 3, 1, 2, 2)
    assert paths[1, 1, 2].flatten().tolist() == [0.0, 0.0, 3.0, 0.0]


def test_perturbation_response_of_a_linear_a_constant_and_a_random_decoder():
    codes = torch.full((5, 4), 0.5)
    linear = perturbation_response(_Linear(), codes, range(4), [0.1, 1.0])
    # one of four pixels moves by delta: RMS change delta / 2, mean intensity 0.5 + delta / 4
    assert linear["rms_change"] == pytest.approx([0.05, 0.5]) and linear["mean_intensity"] == pytest.approx(
        [0.525, 0.75]
    )
    constant = perturbation_response(_Constant(), codes, range(4), [0.1, 15.0])
    assert constant["rms_change"] == [0.0, 0.0] and constant["base_intensity"] == 0.5
    noisy = perturbation_response(
        _Linear(),
        torch.rand(5, 4),
        range(4),
        [0.5],
        judge=lambda images: torch.softmax(images.flatten(1), dim=1),
        confident=0.8,
    )
    assert 0 < noisy["confidence"][0] <= 1 and 0 <= noisy["morphed"][0] <= 1


def test_interpolation_measures_of_a_linear_decoder_match_the_cross_fade():
    images = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    pairs = torch.tensor([[0, 1], [2, 3], [4, 5]])
    out = interpolation_measures(_Linear(), images, pairs, 5, images)
    assert out["unevenness"] == pytest.approx(1.0, abs=1e-5)  # an even path in pixels
    assert out["unevenness"] == pytest.approx(out["crossfade_unevenness"], abs=1e-5)
    assert out["midpoint_distance"] == pytest.approx(out["crossfade_midpoint_distance"], abs=1e-6)
    flat = interpolation_measures(_Constant(), images, pairs, 5, images)
    assert math.isnan(flat["unevenness"])  # a decoder that never changes shows no transition


def test_the_coverage_hook_also_reports_coverage_at_the_first_epoch_s_radius():
    from geovae_core.geometry import coverage_hook

    (hook,) = coverage_hook(size=50).values()
    model = build_model(
        ExperimentConfig(model="mlp", latent="point", widths=(16,), latent_dim=3, init_std=None, activation="relu"),
        (1, 28, 28),
    )
    split = (None, None, torch.rand(50, 1, 28, 28), None)
    with torch.no_grad():
        first = hook(model, split)
    assert first["coverage_first_tau"] == first["coverage"]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # the codes spread out: tau grows, a fixed radius would cover less
        later = hook(model, split)
    assert later["tau"] > first["tau"] and later["coverage_first_tau"] <= later["coverage"]


def test_umap_s_kernels_count_as_compiled_once_numba_s_cache_holds_them(tmp_path, monkeypatch):
    """The first embedding in a cache without them is the one said to be paid once."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not _umap_kernels_cached()
    (tmp_path / "pynndescent_0").mkdir()
    (tmp_path / "pynndescent_0" / "utils.norm-10.py311.nbi").touch()
    assert not _umap_kernels_cached()
    (tmp_path / "umap_0").mkdir()
    (tmp_path / "umap_0" / "layouts.clip-9.py311.nbi").touch()
    assert _umap_kernels_cached()
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert _umap_kernels_cached()  # no cache folder of ours: nothing to say


class _FixedGaussians(torch.nn.Module):
    """An encoder whose every code is N(mu, 4 I): log sigma^2 = log 4, a standard deviation of 2."""

    def __init__(self, mu: torch.Tensor):
        super().__init__()
        self.mu = mu

    def encode(self, x):
        return self.mu.expand(len(x), -1), torch.full((len(x), len(self.mu)), math.log(4.0))


@pytest.mark.parametrize("mu", [torch.zeros(3), torch.tensor([5.0, -1.0, 0.5])])
def test_the_sampled_cv_nnd_draws_codes_with_the_encoder_s_sigma_not_its_variance(monkeypatch, mu):
    """CV-NND is scale-free, so its value alone cannot tell sigma from sigma^2 when every mu is
    the same: the codes handed to cv_nnd are read instead (the draws z = mu + sigma * eps)."""
    import geovae_core.geometry as geometry

    handed = []

    def spy(z):
        handed.append(z)
        return cv_nnd(z)

    monkeypatch.setattr(geometry, "cv_nnd", spy)
    out = latent_cv_nnd(_FixedGaussians(mu), torch.zeros(64, 1, 2, 2), batches=1, batch_size=64, draws=100)
    on_mu, draws = handed
    assert on_mu.shape == (64, 3) and draws.shape == (100, 64, 3)
    deviation = draws - mu
    assert torch.allclose(deviation.mean(dim=(0, 1)), torch.zeros(3), atol=0.05)
    assert torch.allclose(deviation.std(dim=(0, 1)), torch.full((3,), 2.0), atol=0.05)
    assert out["cv_nnd_sampled"] == pytest.approx(float(cv_nnd(draws).mean()))


def _two_class_judge(confidence: float):
    """Images -> probabilities: class 1 with ``confidence`` for an image brighter in all than 0.5,
    else class 0 with 0.9 (float32, as a softmax hands them)."""

    def judge(images):
        bright = images.flatten(1).sum(dim=1, keepdim=True) > 0.5
        return torch.where(bright, torch.tensor([1 - confidence, confidence]), torch.tensor([0.9, 0.1]))

    return judge


@pytest.mark.parametrize("confidence, morphed", [(0.8, 1.0), (0.81, 1.0), (0.79, 0.0), (0.6, 0.0)])
def test_morphed_counts_another_class_judged_with_a_confidence_of_at_least_0_8(confidence, morphed):
    """criteria.MORPHS: outputs "confidently (>= 0.8)" judged another class; exactly 0.8 counts."""
    codes = torch.zeros(3, 4)  # decode to black: class 0; +1 on one pixel: class 1; +0.1: still class 0
    out = perturbation_response(_Linear(), codes, range(4), [0.1, 1.0], _two_class_judge(confidence), 0.8)
    assert out["morphed"] == [0.0, morphed]
    assert out["confidence"] == pytest.approx([0.9, confidence])


class _UnitGaussians(_Linear):
    """Codes N(x, I): the image's pixels as mu, log sigma^2 = 0."""

    def encode(self, x):
        return x.flatten(1), torch.zeros_like(x.flatten(1))


def test_the_cv_nnd_hook_records_latent_cv_nnd_of_the_test_images_under_its_settings():
    import inspect

    from geovae_core.geometry import cv_nnd_hook

    defaults = {k: p.default for k, p in inspect.signature(latent_cv_nnd).parameters.items()}
    (key,) = cv_nnd_hook()
    assert key == f"cv_nnd-{defaults['batches']}x{defaults['batch_size']}x{defaults['draws']}"
    ((key, hook),) = cv_nnd_hook(batches=2, batch_size=16, draws=5).items()
    assert key == "cv_nnd-2x16x5"
    model = _UnitGaussians()
    images = torch.rand(40, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    split = (torch.zeros(1), torch.zeros(1), images, torch.zeros(1))
    calls = []
    real = latent_cv_nnd

    def spy(*args):
        calls.append(args)
        return real(*args)

    import geovae_core.geometry as geometry

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(geometry, "latent_cv_nnd", spy)
        recorded = hook(model, split)
    ((seen_model, images, batches, batch_size, draws),) = calls
    assert seen_model is model and images is split[2] and (batches, batch_size, draws) == (2, 16, 5)
    assert recorded == real(model, split[2], 2, 16, 5)


def test_an_ellipsoid_fit_is_centred_on_each_coordinate_s_own_mean():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(5000, 3, generator=g) * 0.1 + torch.tensor([7.0, -3.0, 1.0])
    centre, radii, _ = fit_ellipsoid(points, scale=1.0)
    assert torch.allclose(centre, torch.tensor([7.0, -3.0, 1.0]), atol=0.01)
    assert torch.allclose(radii, torch.full((3,), 0.1), rtol=0.05)


class _FirstThreeCoordinates:
    """A stand-in for umap.UMAP that keeps the first three coordinates and records its settings."""

    made = []

    def __init__(self, **settings):
        self.settings = settings
        _FirstThreeCoordinates.made.append(self)

    def fit_transform(self, points):
        self.points = points
        return points[:, :3].copy()


def test_sample_map_fit_draws_each_gaussian_with_its_own_sigma_and_fits_one_ellipsoid_per_cloud(monkeypatch):
    import sys
    import types

    import geovae_core.geometry as geometry

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=_FirstThreeCoordinates))
    monkeypatch.setattr(geometry, "_cache_umap_kernels", lambda: None)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    _FirstThreeCoordinates.made.clear()
    mu = torch.tensor([[0.0, 0.0, 0.0, 9.0], [10.0, -5.0, 2.0, 9.0]])
    logvar = torch.log(torch.tensor([[0.25, 1.0, 4.0, 1.0], [1.0, 0.25, 1.0, 1.0]]))  # sigmas (0.5, 1, 2), (1, .5, 1)
    out = geometry.sample_map_fit(mu, logvar, samples=4000, seed=3, n_neighbors=50, min_dist=0.5)
    (mapper,) = _FirstThreeCoordinates.made
    assert mapper.settings == dict(n_components=3, n_neighbors=50, min_dist=0.5, random_state=3, n_jobs=1)
    assert mapper.points.shape == (2 * 4000, 4)  # every draw of every Gaussian in one map
    assert out["clouds"].shape == (2, 4000, 3) and len(out["ellipsoids"]) == 2
    for (centre, radii, _), m, lv in zip(out["ellipsoids"], mu, logvar):
        assert torch.allclose(centre, m[:3], atol=0.1)
        assert torch.allclose(radii.sort().values, (2 * torch.exp(0.5 * lv[:3])).sort().values, rtol=0.05)
    noise = [(cloud - m[:3]) / torch.exp(0.5 * lv[:3]) for cloud, m, lv in zip(out["clouds"], mu, logvar)]
    assert float((noise[0] * noise[1]).mean().abs()) < 0.05  # each Gaussian draws its own noise
    again = geometry.sample_map_fit(mu, logvar, samples=4000, seed=3, n_neighbors=50, min_dist=0.5)
    assert torch.equal(again["clouds"], out["clouds"])  # seeded


def test_a_jump_path_holds_its_first_frame_for_the_first_half_then_its_last():
    from geovae_core.geometry import jump_paths

    for steps, first_frames in [(6, 3), (5, 2)]:
        fade = torch.arange(float(steps)).view(1, steps, 1, 1, 1).expand(2, steps, 1, 2, 2)
        jumped = jump_paths(fade)
        assert jumped.shape == fade.shape
        expected = [0.0] * first_frames + [steps - 1.0] * (steps - first_frames)
        assert jumped[1, :, 0, 0, 0].tolist() == expected


def test_a_perturbation_keeps_the_codes_precision():
    z = torch.zeros(2, 3, dtype=torch.float64)
    out = perturb(z, [1], [0.1, 1e-9])
    assert out.dtype == torch.float64 and out[0, 0, :, 1].tolist() == [0.1, 1e-9]  # not rounded to float32


def test_nearest_neighbour_distances_are_batched_over_any_number_of_leading_dims():
    z = torch.randn(2, 3, 20, 4, generator=torch.Generator().manual_seed(0))
    batched = nearest_neighbour_sq_distances(z)
    assert batched.shape == (2, 3, 20)
    for i in range(2):
        for j in range(3):
            assert torch.equal(batched[i, j], nearest_neighbour_sq_distances(z[i, j]))


def test_an_exposed_path_splits_a_jump_between_the_frames_its_boundary_falls_between():
    # two training images, their codes at -1 and +1: the nearest-image decoder jumps at code 0
    decoder = NearestImageDecoder(torch.tensor([[-1.0], [1.0]]), torch.tensor([0.0, 1.0]).view(2, 1, 1, 1))
    deltas = torch.linspace(-3, 3, 13)  # frames every 0.5
    on_a_frame, between_frames = torch.tensor([[0.0]]), torch.tensor([[0.25]])
    plain = unevenness(perturbation_paths(decoder, on_a_frame, [0], deltas))
    assert float(plain) == pytest.approx(12.0)  # one whole step, wherever the boundary lies
    # the boundary on a frame: that frame straddles it, half of each image: two half steps
    split = unevenness(perturbation_paths(decoder, on_a_frame, [0], deltas, torch.Generator().manual_seed(0)))
    assert 6.0 <= float(split) <= 6.0 + 12 / EXPOSURES
    # the boundary half-way between two frames: each frame's stretch lies on one side, one whole step
    whole = unevenness(perturbation_paths(decoder, between_frames, [0], deltas, torch.Generator().manual_seed(0)))
    assert float(whole) == pytest.approx(12.0)


def test_the_nearest_decoder_s_average_is_the_mean_of_its_decodes():
    g = torch.Generator().manual_seed(0)
    decoder = NearestImageDecoder(torch.rand(50, 4, generator=g), torch.rand(50, 1, 3, 3, generator=g))
    z = torch.rand(6, 5, 7, 4, generator=g)  # six exposures of 5 x 7 frames
    assert torch.equal(decoder.nearest(z), distances(z.reshape(-1, 4), decoder.codes).argmin(dim=1).view(6, 5, 7))
    mean = torch.stack([decoder.decode(exposure) for exposure in z]).mean(0)
    assert decoder.decode_average(z).shape == (5, 7, 1, 3, 3)
    assert torch.allclose(decoder.decode_average(z), mean, atol=1e-6)
