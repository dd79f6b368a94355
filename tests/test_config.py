"""A typo in a name fails at once, naming the field, the value and what is allowed."""

import pytest

from geovae_core import ExperimentConfig, ParameterError


def test_a_valid_config_passes():
    config = ExperimentConfig(
        model="mlp",
        dataset="celeba",
        latent="centres",
        activation="relu",
        likelihood="mse",
        optimizer="adam",
        loss_terms=(("recon", 1.0), ("centre_pull", 1.0)),
    )
    assert config.replace(init_from=config).init_from is config


def test_latent_centers_is_a_typo_not_a_plain_autoencoder():
    with pytest.raises(ParameterError) as error:
        ExperimentConfig(model="mlp", latent="centers")
    assert str(error.value) == (
        "latent: 'centers' is not one of sampled, mean, point, codebook, quantized, centres (did you mean 'centres'?)"
    )


@pytest.mark.parametrize(
    "field, value, suggestion",
    [
        ("model", "shallow_mpl", "shallow_mlp"),
        ("dataset", "fashion-mnist", "fashion_mnist"),
        ("activation", "Relu", "relu"),
        ("likelihood", "bernouli", "bernoulli"),
        ("optimizer", "adamw", "adam"),
    ],
)
def test_each_name_field_names_itself_the_value_and_the_closest_name(field, value, suggestion):
    with pytest.raises(
        ParameterError, match=rf"^{field}: '{value}' is not one of .*\(did you mean '{suggestion}'\?\)$"
    ):
        ExperimentConfig(**{"model": "shallow_mlp", field: value})


def test_a_loss_term_typo_lists_the_terms():
    with pytest.raises(
        ParameterError, match=r"^loss_terms: 'centring' is not one of recon, kl, .*xent \(did you mean 'centering'\?\)"
    ):
        ExperimentConfig(model="shallow_mlp", loss_terms=(("recon", 1.0), ("centring", 1.0)))


def test_a_name_with_no_close_match_gets_no_suggestion():
    with pytest.raises(ParameterError, match=r"^optimizer: 'lbfgs' is not one of adagrad, adam, sgd$"):
        ExperimentConfig(model="shallow_mlp", optimizer="lbfgs")


def test_replace_and_nested_init_from_are_checked():
    base = ExperimentConfig(model="mlp", widths=(16,))
    with pytest.raises(ParameterError, match="latent: 'centers'"):
        base.replace(latent="centers")
    with pytest.raises(ParameterError, match="latent: 'centers'"):
        base.replace(init_from=ExperimentConfig(model="mlp", latent="centers"))
    with pytest.raises(ParameterError, match="init_from: expected an ExperimentConfig, got dict"):
        base.replace(init_from={"model": "mlp", "latent": "centers"})
