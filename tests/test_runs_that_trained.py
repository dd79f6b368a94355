"""The rule for a run that trained (``verdicts.training_check``), on real runs: K's AE started as
PyTorch makes it sits on the mean image's plateau and is called untrained; the same AE from the
book's starts leaves it and is called trained (N11's "Why K's AE did not train")."""

import pytest

from geovae_core.config import ExperimentConfig
from geovae_core.results import run_trained
from geovae_core.training import constant_model_losses, train

K_AE = ExperimentConfig(
    model="shallow_mlp",
    latent="point",
    latent_dim=3,
    loss_terms=(("recon", 1.0),),
    optimizer="adagrad",
    lr=0.02,
    weight_decay=1 / 2000,
    init_std=0.1,
    epochs=6,
    batch_size=100,
    train_size=2000,
    test_size=500,
)


def test_the_constant_model_is_the_training_mean_image_and_a_perfect_model_each_image_itself():
    ((constant, perfect),) = constant_model_losses(K_AE).values()
    assert 150 < constant < 260  # BCE of the mean image on continuous MNIST, nats per image
    assert 30 < perfect < 60  # the summed pixel entropies of grey levels (about 45 on the full test set)
    assert constant_model_losses(K_AE.replace(binarize=True))["test_recon"][1] < 1  # binarised: nearly 0


@pytest.mark.slow  # two real runs of K's AE, 6 epochs of 2,000 images each
@pytest.mark.parametrize(
    "starts, trained",
    [
        (dict(output_bias_at_mean=False, adagrad_accumulator=0.0), False),  # its tanh codes saturate: stuck
        (dict(output_bias_at_mean=True, adagrad_accumulator=0.1), True),
    ],
)
def test_k_s_ae_from_pytorch_s_start_is_stuck_and_from_the_book_s_start_trains(starts, trained):
    run = train(K_AE.replace(**starts), progress=False)
    ok, why = run_trained(run)
    assert ok is trained, why
