"""N11 · The KTH reproduction of AEVB (K; AEVB Fig 2): the chapter's knobs per profile and the
runs it trains.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..config import ExperimentConfig
from ..data import load_dataset
from ..profiles import Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        latent_dims=[3, 5, 10, 20, 200],
        manifold_epochs=30,
        epochs=10,
        batch_size=100,
        train_size=20000,
        test_size=10000,
        optimizer="adagrad",
        lr_candidates=[0.01, 0.02, 0.1],
        lr_search_epochs=2,
        lr_search_size=6000,
        activation="tanh",
        likelihood="bernoulli",
        decoder_std=0.1,
        init_std=0.01,
        iw_samples=500,
        iw_test_size=1000,
    ),
    smoke=dict(
        latent_dims=[3, 20],
        manifold_epochs=2,
        epochs=2,
        train_size=2000,
        test_size=500,
        lr_search_epochs=1,
        lr_search_size=1000,
        iw_samples=20,
        iw_test_size=100,
    ),
    paper=dict(
        manifold_epochs=1670,
        epochs=1670,
        train_size=60000,
        lr_search_size=60000,
        iw_samples=5000,
        iw_test_size=10000,
    ),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "seeds", "latent_dims", "train_size"),
)

CHAPTER = Chapter("N11", "The KTH reproduction of AEVB", "K; AEVB Fig 2", SETTINGS)


# The step sizes K's 2-epoch search chose (K §2), shown beside ours.
K_STEP = {3: 0.02, 5: 0.01, 10: 0.02, 20: 0.02, 200: 0.01}


def tracks(params) -> dict:
    """K's continuous MNIST with its reconstruction term, and AEVB's binarised MNIST with a Bernoulli decoder."""
    return {
        "continuous": dict(binarize=False, likelihood=params.likelihood),
        "binarised": dict(binarize=True, likelihood="bernoulli"),
    }


def training_images(params) -> int:
    """The training images every run of this chapter uses (AEVB's weight prior is a decay of 1 / this)."""
    return min(params.train_size, len(load_dataset("mnist").train_images))


def vae_config(params, track: str, z: int, lr: float = 0.02, seed: int | None = None) -> ExperimentConfig:
    """K's VAE (Appendix A.1) on ``track``: AEVB's N(0, I) weight prior and N(0, 0.01) initialisation."""
    return ExperimentConfig(
        model="shallow_mlp",
        dataset="mnist",
        latent_dim=z,
        activation=params.activation,
        decoder_std=params.decoder_std,
        loss_terms=(("recon", 1.0), ("kl", 1.0)),
        optimizer=params.optimizer,
        lr=lr,
        weight_decay=1.0 / training_images(params),
        init_std=params.init_std,
        batch_size=params.batch_size,
        epochs=params.epochs,
        train_size=params.train_size,
        test_size=params.test_size,
        seed=params.seeds[0] if seed is None else seed,
        device=params.device,
        **tracks(params)[track],
    )


def ae_config(params, z: int, lr: float, seed: int) -> ExperimentConfig:
    """K's AE (Appendix A.2) on the continuous track, trained as the VAE ("the exact same" settings, K §2)."""
    return vae_config(params, "continuous", z, lr, seed).replace(latent="point", loss_terms=(("recon", 1.0),))


def step_size_searches(params) -> dict:
    """{(track, z): the config whose step size K's search picks}: every latent size on each
    track, and z = 2 (the manifold's) on the continuous one."""
    dims = sorted(set(params.latent_dims))
    return {
        (track, z): vae_config(params, track, z)
        for track in tracks(params)
        for z in sorted(set(dims) | ({2} if track == "continuous" else set()))
    }


def trained_configs(params, step: dict) -> dict:
    """Every run the chapter trains, by key: a VAE per track, latent size and seed, an AE per
    latent size and seed (continuous track), and the 2-D VAE of K Fig 2 (``manifold_epochs``)."""
    dims = sorted(set(params.latent_dims))
    return {
        **{
            ("VAE", track, z, s): vae_config(params, track, z, step[track, z], s)
            for track in tracks(params)
            for z in dims
            for s in params.seeds
        },
        **{("AE", z, s): ae_config(params, z, step["continuous", z], s) for z in dims for s in params.seeds},
        "manifold": vae_config(params, "continuous", 2, step["continuous", 2]).replace(epochs=params.manifold_epochs),
    }
