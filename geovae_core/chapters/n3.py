"""N3 · Gaussian balls and the CV of nearest-neighbour distances (P §2.1): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=16,
        widths=[512, 256],
        cnn_widths=[32, 64, 128],
        betas=[0.05, 0.1],
        epochs=10,
        batch_size=128,
        train_size=10000,
        cv_batches=16,
        cv_batch_size=128,
        cv_draws=100,
        ball_classes=[0, 1],
        balls_per_class=10,
        ball_samples=50,
    ),
    smoke=dict(
        widths=[64], cnn_widths=[8, 16, 32], epochs=2, train_size=1000, cv_batches=2, cv_draws=10, ball_samples=20
    ),
    paper=dict(epochs=20, train_size=60000, cv_draws=1000, ball_samples=200),
    main=("epochs", "seeds", "betas", "cv_draws"),
)

CHAPTER = Chapter("N3", "Gaussian balls and the CV of nearest-neighbour distances", "P §2.1", SETTINGS)
