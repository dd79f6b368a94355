"""P §2.3's new decoder: a warm start that keeps some modules and draws the others afresh."""

import torch

from conftest import tiny_config
from geovae_core import train
from geovae_core.cache import run
from geovae_core.models import build_model

VAE = tiny_config("mlp", epochs=1)
ABLATION = VAE.replace(
    latent="mean", loss_terms=(("recon", 1.0),), init_from=VAE, reinit=("decoder",), freeze=("encoder",), epochs=0
)


def test_a_reinitialised_decoder_is_not_the_original_decoder_s_initialisation(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path))
    vae = run(VAE, progress=False)
    torch.manual_seed(VAE.seed)
    original_start = build_model(VAE, (1, 28, 28)).decoder.state_dict()  # what the VAE's decoder started from
    fresh = train(ABLATION, progress=False, start_weights=vae.model.state_dict()).model  # zero epochs: as it starts
    for name, value in fresh.decoder.state_dict().items():
        assert not torch.equal(value, original_start[name]), name  # an independent draw
        assert not torch.equal(value, vae.model.decoder.state_dict()[name]), name  # not the trained decoder
    for name, value in fresh.encoder.state_dict().items():
        assert torch.equal(value, vae.model.encoder.state_dict()[name]), name  # the trained encoder is kept
    again = train(ABLATION, progress=False, start_weights=vae.model.state_dict()).model
    assert all(
        torch.equal(a, b) for a, b in zip(again.decoder.state_dict().values(), fresh.decoder.state_dict().values())
    )
