"""Transductive zero-shot classification over a batch of query embeddings, as TransCLIP (Zanella et al. 2024).

The objective over soft assignments ``z`` (N, C), class means ``mu`` (C, D) and a shared diagonal variance:

    - sum_i z_i . log p_i             GMM log-likelihood of each embedding under each class
    - sum_ij w_ij z_i . z_j           Laplacian term over a k-nearest-neighbour affinity (cosine weights)
    + sum_i KL_lambda(z_i || y_i)     stay close to the text (or head) prior y

is minimised by block majorise-minimise steps: z in closed form given the others (a few fixed-point passes),
then mu and the variance as weighted means. Training-free: nothing but the query batch and the prior.
Constants follow the authors' zero-shot solver (10 outer iterations, 5 z passes, 3 neighbours, likelihood
temperature 50, lambda 1, mu initialised from the 8 most confident queries per class).

Cost: O(N k) memory for the sparse affinity plus O(N C) for z; time O(N^2 D) for the neighbour search
(in chunks, so memory stays O(chunk x N)) and O(N C D) per iteration.
"""

from __future__ import annotations

import torch

N_NEIGHBOURS = 3
OUTER_ITERATIONS = 10
Z_PASSES = 5
TEMPERATURE = 50.0
N_CONFIDENT = 8
CHUNK = 2048


def knn_affinity(features: torch.Tensor, k: int = N_NEIGHBOURS) -> torch.Tensor:
    """Sparse (N, N) matrix: each row holds the cosine similarity of its k nearest other embeddings."""
    n = len(features)
    k = min(k, n - 1)
    if k <= 0:
        return torch.sparse_coo_tensor(
            torch.empty(2, 0, dtype=torch.long), torch.empty(0), (n, n), check_invariants=True
        ).coalesce()
    rows, cols, values = [], [], []
    for start in range(0, n, CHUNK):
        similarity = features[start : start + CHUNK] @ features.T
        own = torch.arange(start, start + len(similarity))
        similarity[torch.arange(len(similarity)), own] = -torch.inf
        top = similarity.topk(k, dim=-1)
        rows.append(own.repeat_interleave(k))
        cols.append(top.indices.flatten())
        values.append(top.values.flatten())
    index = torch.stack([torch.cat(rows), torch.cat(cols)])
    return torch.sparse_coo_tensor(index, torch.cat(values), (n, n), check_invariants=True).coalesce()


def gaussian_log_likelihood(features: torch.Tensor, mu: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """(N, C): -1/2 sum_d (f_d - mu_cd)^2 / var_d, expanded so no (N, C, D) tensor is built."""
    inverse = 1.0 / variance
    quadratic = (features.pow(2) @ inverse)[:, None] - 2 * (features * inverse) @ mu.T
    return -0.5 * (quadratic + (mu.pow(2) @ inverse)[None, :])


def update_z(
    log_likelihood: torch.Tensor,
    prior: torch.Tensor,
    z: torch.Tensor,
    pairs: torch.Tensor,
    n_neighbours: int = N_NEIGHBOURS,
    lam: float = 1.0,
    passes: int = Z_PASSES,
) -> torch.Tensor:
    """z_i ∝ y_i^lambda exp((log p_i + c ((W + W^T) z)_i) / T), c = T / 2k (the authors' weighting);
    ``pairs`` is W + W^T, built once (:func:`symmetric`)."""
    weight = TEMPERATURE / (2 * max(1, n_neighbours))
    for _ in range(passes):
        exponent = log_likelihood + weight * (pairs @ z)
        exponent = exponent - exponent.max(dim=1, keepdim=True).values
        unnormalised = prior.pow(lam) * torch.exp(exponent / TEMPERATURE)
        z = unnormalised / unnormalised.sum(dim=1, keepdim=True)
    return z


def symmetric(affinity: torch.Tensor) -> torch.Tensor:
    """W + W^T, summed once (transposing a sparse matrix in every pass costs more than the product)."""
    return (affinity + affinity.t()).coalesce()


def update_mu(features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Class means weighted by z, L2-normalised (the embeddings live on the sphere)."""
    mu = (z.T @ features) / z.sum(dim=0)[:, None].clamp_min(1e-12)
    return torch.nn.functional.normalize(mu, dim=-1)


def update_variance(features: torch.Tensor, z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Shared diagonal variance: sum_ic z_ic (f_i - mu_c)^2 / sum z."""
    spread = (
        z.sum(dim=0) @ mu.pow(2) - 2 * ((z.T @ features) * mu).sum(dim=0) + z.sum(dim=1) @ features.pow(2)
    )
    return (spread / z.sum()).clamp_min(1e-12)


def initial_mu(features: torch.Tensor, z: torch.Tensor, n_confident: int = N_CONFIDENT) -> torch.Tensor:
    """Per class, the mean of the most confident queries weighted by their confidence, normalised."""
    top = z.topk(min(n_confident, len(z)), dim=0)
    mu = torch.stack(
        [(features[top.indices[:, c]] * top.values[:, c, None]).mean(0) for c in range(z.shape[1])]
    )
    return torch.nn.functional.normalize(mu, dim=-1)


@torch.no_grad()
def transductive_probabilities(
    features: torch.Tensor, prior: torch.Tensor, lam: float = 1.0, iterations: int = OUTER_ITERATIONS
) -> torch.Tensor:
    """(N, C) assignments for L2-normalised ``features`` (N, D), from the prior ``prior`` (N, C) (the
    zero-shot softmax, or a head's probabilities)."""
    features = features.float()
    prior = prior.float().clamp_min(1e-12)
    z = prior.clone()
    mu = initial_mu(features, z)
    variance = torch.full((features.shape[1],), 1.0 / features.shape[1])
    pairs = symmetric(knn_affinity(features))
    for _ in range(iterations):
        z = update_z(gaussian_log_likelihood(features, mu, variance), prior, z, pairs, lam=lam)
        mu = update_mu(features, z)
        variance = update_variance(features, z, mu)
    return update_z(gaussian_log_likelihood(features, mu, variance), prior, z, pairs, lam=lam)
