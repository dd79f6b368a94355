"""The book's chapters: N-id, notebook, title and the documents' sections they regenerate."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chapter:
    id: str
    notebook: str
    title: str
    documents: str

    @property
    def heading(self) -> str:
        return f"{self.id} · {self.title}"


CHAPTERS = {
    c.id: c
    for c in (
        Chapter("N1", "N1-autoencoders-generate", "Autoencoders can generate", "P Fig 1, App. A.2–A.3; R §2.1"),
        Chapter("N2", "N2-classifier-latent", "A classifier's latent is more compact", "R §2"),
        Chapter("N3", "N3-gaussian-balls", "Gaussian balls and the CV of nearest-neighbour distances", "P §2.1"),
        Chapter("N4", "N4-spread-regularisers", "Spread regularisation instead of KL", "P §2.2"),
        Chapter("N5", "N5-decoder-ablation", "Decoder ablation: reparameterisation as a contract", "P §2.3"),
        Chapter("N6", "N6-latent-coverage", "Dynamic Latent Coverage", "P §3.1, App. A.1"),
        Chapter("N7", "N7-codebook-autoencoder", "The codebook-regularised autoencoder", "P §3.2–3.4"),
        Chapter("N8", "N8-cluster-centres", "A learnable cluster centre", "R §3.1–3.2"),
        Chapter("N9", "N9-ema-codebooks", "Many vectors, EMA codebooks, and collapse", "P App. A.4; R §3.4, §4.1–4.2"),
        Chapter("N10", "N10-vq-ae", "VQ-AE: from one code to a codebook of many", "P §3.5, App. A.5; R §4.3"),
        Chapter("N11", "N11-kth-aevb", "The KTH reproduction of AEVB", "K; AEVB Fig 2"),
    )
}


def chapter_of(notebook: str) -> Chapter | None:
    """The chapter whose notebook stem is ``notebook`` (None for the ledger and other pages)."""
    return next((c for c in CHAPTERS.values() if c.notebook == notebook), None)
