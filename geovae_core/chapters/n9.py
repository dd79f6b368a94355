"""N9 · Many vectors, EMA codebooks, and collapse (P App. A.4; R §3.4, §4.1–4.2): the chapter's knobs per profile.

``base`` is the ``quick`` profile; ``smoke`` and ``paper`` override some of it (``profiles.Settings``).
"""

from ..profiles import ADAM_SQUARED_ERROR, Settings
from . import Chapter

SETTINGS = Settings(
    base=dict(
        ADAM_SQUARED_ERROR,
        latent_dim=16,
        widths=[512, 256],
        residual_width=512,
        residual_blocks=4,
        codebook_sizes=[20, 50],
        residual_codebook_size=500,
        codebook_decay=0.99,
        pull_weight=0.1,
        epochs=10,
        batch_size=128,
        train_size=10000,
        tsne_points=1000,
        perturbation=300.0,
    ),
    smoke=dict(
        latent_dim=8,
        widths=[64],
        residual_width=64,
        residual_blocks=2,
        residual_codebook_size=100,
        epochs=1,
        train_size=1000,
        tsne_points=300,
    ),
    paper=dict(epochs=20, train_size=60000, tsne_points=2000),
    shared=("seeds", "device"),
    main=("epochs", "seeds", "train_size"),
)

CHAPTER = Chapter("N9", "Many vectors, EMA codebooks, and collapse", "P App. A.4; R §3.4, §4.1–4.2", SETTINGS)
