import pytest

from geovae_core.errors import ParameterError
from geovae_core.profiles import KNOBS, PROFILES, resolve


@pytest.mark.parametrize("chapter", sorted(PROFILES))
def test_every_profile_sets_the_same_known_valid_knobs(chapter):
    profiles = PROFILES[chapter]
    assert set(profiles) == {"smoke", "quick", "paper"}
    knobs = set(profiles["quick"])
    for name, values in profiles.items():
        assert set(values) == knobs, name
        for knob, value in values.items():
            assert KNOBS[knob][0](value), (name, knob, value)


def test_an_explicit_knob_beats_the_profile_and_none_keeps_it():
    p = resolve("N11", "quick", epochs=50, seed=None)
    assert p.epochs == 50 and p.seed == PROFILES["N11"]["quick"]["seed"]
    assert p.explicit == {"epochs"} and "| `epochs` | `50` | given |" in p.markdown()


def test_the_paper_profile_is_ks_setting():
    p = resolve("N11", "paper", device="cpu")
    assert (p.epochs, p.batch_size, p.optimizer, p.iw_samples) == (1670, 100, "adagrad", 5000)
    assert p.latent_dims == [3, 5, 10, 20, 200] and p.lr_candidates == [0.01, 0.02, 0.1]


def test_an_unknown_profile_names_the_allowed_ones():
    with pytest.raises(ParameterError, match=r"profile: 'fast' is not one of smoke, quick, paper"):
        resolve("N11", "fast")


@pytest.mark.parametrize("knob, value, message", [
    ("epochs", -1, r"epochs: -1 is not allowed; expected a positive integer"),
    ("epochs", 2.5, r"epochs: 2.5 is not allowed"),
    ("optimizer", "lbfgs", r"optimizer: 'lbfgs' is not allowed; expected one of adagrad, adam, sgd"),
    ("latent_dims", [3, 0], r"latent_dims: \[3, 0\] is not allowed"),
    ("likelihood", "poisson", r"likelihood: 'poisson' is not allowed; expected one of bernoulli, gaussian"),
    ("binarize", "yes", r"binarize: 'yes' is not allowed; expected True or False"),
])
def test_a_bad_value_names_the_knob_and_what_is_allowed(knob, value, message):
    with pytest.raises(ParameterError, match=message):
        resolve("N11", "smoke", **{knob: value})


def test_an_unknown_knob_is_refused():
    with pytest.raises(ParameterError, match="epoch: not a parameter of N11"):
        resolve("N11", "smoke", epoch=3)


def test_device_auto_resolves_to_an_available_device():
    assert resolve("N11", "smoke", device="auto").device in ("cpu", "cuda")
