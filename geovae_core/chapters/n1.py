"""N1 · Autoencoders can generate (P Fig 1, App. A.2–A.3; R §2.1): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=128,
        widths=[64, 64],
        epochs=10,
        batch_size=128,
        train_size=10000,
        celeba_latent_dim=786,
        cnn_widths=[16, 32, 64, 128],
        celeba_epochs=10,
        celeba_batch_size=32,
        magnitudes=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0],
        interpolation_steps=10,
        n_paths=64,
    ),
    smoke=dict(
        latent_dim=16,
        celeba_latent_dim=32,
        cnn_widths=[8, 16, 32, 64],
        epochs=1,
        celeba_epochs=1,
        train_size=1000,
        n_paths=8,
    ),
    paper=dict(epochs=20, cnn_widths=[32, 64, 128, 256], n_paths=256),
    shared=("seeds", "device"),
    main=("epochs", "celeba_epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N1", "Autoencoders can generate", "P Fig 1, App. A.2–A.3; R §2.1", SETTINGS)
