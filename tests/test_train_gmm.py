"""compiler.train.gmm: the mixture recovers the centres of data drawn from a known mixture,
soft weight-sharing gathers a model's weights into codebooks whose export is bit-exact, and
a layer's distinct weights are exactly the components its weights chose."""

import tempfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from compiler.errors import UserError  # noqa: E402
from compiler.fixed import FixedType, Formats  # noqa: E402
from compiler.mantissa import quantize_float  # noqa: E402
from compiler.train import Codebook, export  # noqa: E402
from compiler.train.gmm import (  # noqa: E402
    GaussianMixturePrior, apply_codebooks, soft_weight_sharing, to_codebook,
)

from tests.train_tasks import tiny_task  # noqa: E402

torch.set_num_threads(1)


def test_fit_recovers_the_centres_of_a_known_mixture():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([0.0, -0.8, 0.4, 1.0], dtype=torch.float64)
    labels = torch.randint(0, 4, (4000,), generator=g)
    values = centres[labels] + 0.04 * torch.randn(4000, generator=g, dtype=torch.float64)
    prior = GaussianMixturePrior.for_weights(values, 4).fit(values, steps=800, lr=0.02)
    learned = np.sort(prior.means.detach().numpy())
    np.testing.assert_allclose(learned, np.sort(centres.numpy()), atol=0.02)
    # and the standard deviations and proportions: 0.04 and a quarter each
    np.testing.assert_allclose(np.exp(prior.log_vars.detach().numpy() / 2), 0.04, rtol=0.15)
    np.testing.assert_allclose(torch.softmax(prior.logits, 0).detach().numpy(), 0.25, atol=0.03)
    # the most probable component is the one each value was drawn from (a few overlap)
    order = np.argsort(prior.means.detach().numpy())
    drawn = np.argsort(np.argsort(centres.numpy()))[labels.numpy()]
    assert (np.argsort(order)[prior.component(values)] == drawn).mean() > 0.99


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def centre_of(means, chosen, fmt):
    """The value a weight of component ``chosen`` must take: its mean in ``fmt`` (the pinned 0: 0)."""
    t = FixedType.parse(fmt)
    mantissas = quantize_float(np.asarray(means, dtype=np.float64), Formats.uniform((len(means),), t))
    rounded = mantissas * 2.0 ** -t.frac_bits
    return np.where(chosen == 0, 0.0, rounded[chosen])


@pytest.mark.parametrize("per_axis", [False, True])
def test_codebook_model_exports_bit_exactly_with_one_weight_per_component(per_axis):
    model, loader, x, y = tiny_task(weight_format="fixed<10,1,RND_CONV,SAT>")
    priors = soft_weight_sharing(model, loader, components=5, steps=120, tau=0.05, lr=3e-3, per_axis=per_axis)
    layers = {name: model[int(name)] for name in priors}
    rows_of = {name: ([(priors[name], layer.weight)] if not per_axis else list(zip(priors[name], layer.weight)))
               for name, layer in layers.items()}
    chosen = {name: [(p.means.detach().numpy(), p.component(w)) for p, w in rows] for name, rows in rows_of.items()}
    books = apply_codebooks(model, priors, width=6)
    assert set(books) == {"1", "3"} and all(isinstance(b, Codebook) for b in books.values())
    merged = 0
    for name, layer in layers.items():
        weight = layer.quantized_weight().detach().numpy()
        rows = [weight] if not per_axis else list(weight)
        for values, (means, comp), (centres, fmt) in zip(rows, chosen[name], books[name].books):
            # every weight sits at its most probable component's centre, rounded into the codebook's format
            np.testing.assert_array_equal(values, centre_of(means, comp, str(fmt)))
            # the distinct weights are the codebook, one per component used (two rounded onto one merge)
            assert sorted(np.unique(values)) == list(centres)
            assert len(centres) <= len(np.unique(comp))
            merged += len(np.unique(comp)) - len(centres)
            assert (values[comp == 0] == 0).all()  # the pinned component prunes
    if not per_axis:  # per layer, at 6 bits, no two of these centres round onto one
        assert merged == 0
    assert accuracy(model, x, y) > 0.6  # the codebook model still classifies (chance: 0.25)
    export(model, torch.cat([x[:32], 10 * x[:8]]), tempfile.mkdtemp())


def test_the_prior_gathers_weights_around_its_centres():
    model, loader, _, _ = tiny_task(weight_format="fixed<10,1,RND_CONV,SAT>")
    spread = {}
    for tau in (0.0, 0.5):
        m = __import__("copy").deepcopy(model)
        priors = soft_weight_sharing(m, loader, components=4, steps=150, tau=tau, lr=3e-3)
        w = m[1].weight.detach().reshape(-1, 1).double()
        spread[tau] = float((w - priors["1"].means.detach()).abs().min(dim=1).values.mean())
    assert spread[0.5] < 0.7 * spread[0.0]


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="at least 2 components"):
        GaussianMixturePrior.for_weights(torch.ones(3), 1)
    with pytest.raises(UserError, match="at least 2 components"):
        GaussianMixturePrior([0.0])
    prior = GaussianMixturePrior([-0.5, 0.5])
    with pytest.raises(UserError, match="width must be 2 to 24"):
        to_codebook(prior, torch.zeros(3, 2), width=40)
    with pytest.raises(UserError, match="one per row"):
        to_codebook([prior], torch.zeros(3, 2))
