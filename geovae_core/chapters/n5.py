"""N5 · Decoder ablation: reparameterisation as a contract (P §2.3): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        likelihood="bernoulli",
        latent_dim=16,
        widths=[512, 256],
        epochs=10,
        batch_size=128,
        train_size=20000,
        n_paths=16,
    ),
    smoke=dict(widths=[64], epochs=1, train_size=1000, n_paths=2),
    paper=dict(epochs=20, train_size=60000, n_paths=64),
    shared=("seeds", "fd_samples", "device"),
    main=("epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N5", "Decoder ablation: reparameterisation as a contract", "P §2.3", SETTINGS)
