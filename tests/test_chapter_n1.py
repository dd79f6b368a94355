"""N1 trains P's plain autoencoders (no KL, no noise) and reads its claims on their outputs."""

import torch

from geovae_core.chapters import n1
from geovae_core.profiles import resolve


def test_n1_trains_a_plain_mlp_ae_on_mnist_and_a_conv_ae_on_celeba_per_seed():
    params = resolve("N1", n1.SETTINGS, "smoke")
    runs = n1.experiments(params)
    assert set(runs) == {(d, s) for d in ("mnist", "celeba") for s in params.seeds}
    mnist, celeba = runs["mnist", params.seeds[0]], runs["celeba", params.seeds[0]]
    assert (mnist.model, mnist.latent, mnist.loss_terms) == ("mlp", "point", (("recon", 1.0),))
    assert (celeba.model, celeba.latent_dim, celeba.epochs) == ("conv", params.celeba_latent_dim, params.celeba_epochs)
    assert mnist.latent_dim == params.latent_dim and mnist.widths == tuple(params.widths)
    assert len({runs[k].seed for k in runs}) == len(params.seeds)


def test_the_read_ratio_compares_latent_midpoints_with_pixel_cross_fades_read_as_digits():
    class Judge:  # reads an image when its first pixel is bright
        def readable(self, images):
            return images.flatten(1)[:, 0] > 0.5

    measuring = n1.Measuring.__new__(n1.Measuring)
    measuring.judge = Judge()
    bright, dark = torch.ones(4, 1, 2, 2), torch.zeros(4, 1, 2, 2)
    midpoints = torch.cat([bright[:3], dark[:1]])  # three of four read
    crossfades = torch.cat([bright[:1], dark[:3]])  # one of four read
    assert measuring.read_ratio(midpoints, crossfades) == 3.0
