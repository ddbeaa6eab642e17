"""TransCLIP-style transductive inference: each update against a direct computation, and a toy problem."""

import torch
import torch.nn.functional as F

from msclip.adapt.transductive import (
    TEMPERATURE,
    gaussian_log_likelihood,
    initial_mu,
    knn_affinity,
    symmetric,
    transductive_probabilities,
    update_mu,
    update_variance,
    update_z,
)


def clusters(n_per_class=60, dim=16, noise=0.25, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(3, dim, generator=generator), dim=-1)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    features = F.normalize(
        centres[labels] + noise * torch.randn(len(labels), dim, generator=generator), dim=-1
    )
    return features, labels, centres


def test_log_likelihood_is_the_diagonal_gaussian_exponent():
    features, _, centres = clusters(n_per_class=4)
    variance = torch.rand(features.shape[1]) + 0.1
    direct = -0.5 * ((features[:, None, :] - centres[None]) ** 2 / variance).sum(-1)
    assert torch.allclose(gaussian_log_likelihood(features, centres, variance), direct, atol=1e-4)


def test_z_update_without_neighbours_is_prior_times_tempered_likelihood():
    log_likelihood = torch.tensor([[-1.0, -3.0], [-10.0, 0.0]])
    prior = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    empty = symmetric(knn_affinity(prior, k=0))
    z = update_z(log_likelihood, prior, prior.clone(), empty)
    by_hand = prior * torch.exp(log_likelihood / TEMPERATURE)
    assert torch.allclose(z, by_hand / by_hand.sum(1, keepdim=True))


def test_mu_and_variance_updates_are_weighted_means():
    features, _, _ = clusters(n_per_class=5)
    z = torch.rand(len(features), 3).softmax(-1)
    mu = update_mu(features, z)
    direct_mu = F.normalize(
        torch.stack([(z[:, c, None] * features).sum(0) / z[:, c].sum() for c in range(3)]), dim=-1
    )
    assert torch.allclose(mu, direct_mu, atol=1e-6)
    direct_variance = (z[:, :, None] * (features[:, None, :] - mu[None]) ** 2).sum((0, 1)) / z.sum()
    assert torch.allclose(update_variance(features, z, mu), direct_variance, atol=1e-6)


def test_affinity_holds_the_k_nearest_other_points_with_their_cosine():
    features = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]]), dim=-1)
    dense = knn_affinity(features, k=1).to_dense()
    assert dense.diagonal().eq(0).all() and (dense != 0).sum(1).eq(1).all()
    assert dense[0].argmax() == 1 and dense[2].argmax() == 3
    assert torch.isclose(dense[0, 1], features[0] @ features[1])


def test_z_update_adds_the_neighbours_assignments_both_ways():
    features = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=-1)
    affinity = knn_affinity(features, k=1)  # 0 -> 1, 1 -> 0, 2 -> 1
    prior = torch.full((3, 2), 0.5)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    flat = torch.zeros(3, 2)
    updated = update_z(flat, prior, z, symmetric(affinity), n_neighbours=1, passes=1)
    dense = affinity.to_dense()
    exponent = (dense + dense.T) @ z / 2  # T / 2k times the sum, divided by T
    assert torch.allclose(updated, exponent.softmax(-1), atol=1e-6)


def test_initial_mu_averages_the_most_confident_queries():
    features = torch.eye(3)
    z = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 0.3, 0.7]])
    mu = initial_mu(features, z, n_confident=1)
    assert torch.allclose(mu, torch.eye(3))


def test_transduction_recovers_clusters_that_a_biased_text_prior_gets_partly_wrong():
    # CLIP-like: 256 dimensions, images of a class at cosine ~0.8 to each other
    features, labels, centres = clusters(dim=256, noise=0.05)
    # a text classifier pulled towards the next class: zero-shot gets a part of the queries wrong
    text = F.normalize(centres + 0.9 * centres.roll(1, dims=0), dim=-1)
    prior = (100 * features @ text.T).softmax(-1)
    zero_shot = (prior.argmax(-1) == labels).float().mean()
    z = transductive_probabilities(features, prior)
    transductive = (z.argmax(-1) == labels).float().mean()
    assert zero_shot < 0.9
    assert transductive == 1.0
    assert torch.allclose(z.sum(-1), torch.ones(len(z)))


def test_transduction_is_deterministic_and_handles_a_single_query():
    features, _, centres = clusters(n_per_class=3)
    prior = (100 * features @ centres.T).softmax(-1)
    assert torch.equal(
        transductive_probabilities(features, prior), transductive_probabilities(features, prior)
    )
    one = transductive_probabilities(features[:1], prior[:1])
    assert one.shape == (1, 3) and torch.isfinite(one).all()
