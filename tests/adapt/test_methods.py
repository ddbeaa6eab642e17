"""Few-shot methods on tiny tensors, against hand-computed values or a reference implementation."""

import math

import pytest
import torch
import torch.nn.functional as F

from msclip.adapt.methods import (
    CLIP_SCALE,
    METHODS,
    TIP_ALPHAS,
    TIP_BETAS,
    Shots,
    fit_knn,
    fit_linear_probe,
    fit_tip_adapter,
    fit_tip_adapter_f,
    score_knn,
    score_tip_adapter,
    search_alpha_beta,
    tip_logits,
)


def separable_shots(n_classes=3, shots=4, dim=8, noise=0.3, seed=0, text_noise=1.0) -> Shots:
    """Clusters around random unit centres; the text classifier is a noisy copy of the centres."""
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(n_classes, dim, generator=generator), dim=-1)
    labels = torch.arange(n_classes).repeat_interleave(shots)
    features = F.normalize(
        centres[labels] + noise * torch.randn(len(labels), dim, generator=generator), dim=-1
    )
    text = F.normalize(centres + text_noise * torch.randn(n_classes, dim, generator=generator), dim=-1)
    return Shots(features, labels, text)


def test_tip_adapter_logits_match_the_formula_by_hand():
    features = torch.tensor([[1.0, 0.0]])
    text = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    alpha, beta = 2.0, 3.0
    # affinities f.k = 1, 0, 0.6 -> exp(-3 (1 - a)) = 1, e^-3, e^-1.2
    expected = torch.tensor([[100 * 0.6 + alpha * 1.0, 100 * 0.0 + alpha * (math.exp(-3) + math.exp(-1.2))]])
    assert torch.allclose(tip_logits(features, text, keys, values, alpha, beta), expected, atol=1e-5)


def test_tip_adapter_keeps_the_shots_as_its_cache_and_scores_with_its_formula():
    shots = separable_shots()
    tensors, params = fit_tip_adapter(shots, alpha=1.5, beta=4.0)
    assert torch.equal(tensors["keys"], shots.features) and torch.equal(tensors["values"], shots.onehot)
    queries = shots.features[:2]
    expected = (
        CLIP_SCALE * queries @ shots.text.T
        + 1.5 * torch.exp(-4.0 * (1 - queries @ shots.features.T)) @ shots.onehot
    ).softmax(-1)
    assert torch.allclose(score_tip_adapter(tensors, params, queries), expected)


def test_alpha_beta_search_is_the_best_leave_one_out_accuracy_on_the_grid():
    shots = separable_shots(n_classes=3, shots=4, noise=0.5, seed=0, text_noise=1.0)
    n = len(shots.labels)

    def held_out(alpha, beta):
        correct = 0
        for i in range(n):  # score shot i against the cache without it
            others = torch.arange(n) != i
            logits = tip_logits(
                shots.features[i : i + 1],
                shots.text,
                shots.features[others],
                shots.onehot[others],
                alpha,
                beta,
            )
            correct += int(logits.argmax(-1).item() == shots.labels[i].item())
        return correct / n

    best = (held_out(1.0, 1.0), (1.0, 1.0))  # the paper's start, unless the grid does strictly better
    for beta in TIP_BETAS:
        for alpha in TIP_ALPHAS:
            if held_out(alpha, beta) > best[0]:
                best = (held_out(alpha, beta), (alpha, beta))
    assert best[1] != (1.0, 1.0)  # the case exercises the search
    assert search_alpha_beta(shots, shots.features) == best[1]


def test_linear_probe_matches_scikit_learn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    shots = separable_shots(n_classes=3, shots=6, noise=0.8)
    n, c_inverse = len(shots.labels), 2.0
    tensors, _ = fit_linear_probe(shots, text_init=False, weight_decay=1 / (c_inverse * n))
    reference = LogisticRegression(C=c_inverse, tol=1e-10, max_iter=10_000).fit(shots.features, shots.labels)
    ours = METHODS["linear-probe"].score(tensors, {}, shots.features)
    assert torch.allclose(ours, torch.from_numpy(reference.predict_proba(shots.features)).float(), atol=1e-4)


def test_text_initialised_probe_starts_at_zero_shot_and_stays_along_the_text_when_regularised():
    shots = separable_shots()
    start, params = fit_linear_probe(shots, max_iter=0)  # no step taken: the zero-shot classifier
    assert params["text_init"] is True
    assert torch.allclose(start["weight"], CLIP_SCALE * shots.text)
    tensors, _ = fit_linear_probe(shots, weight_decay=1e6)  # the free part pinned at 0
    assert torch.allclose(tensors["weight"], tensors["text_scale"][:, None] * shots.text, atol=1e-3)


def test_linear_probe_is_deterministic_and_fits_separable_shots():
    shots = separable_shots(text_noise=5.0)
    first, _ = fit_linear_probe(shots)
    second, _ = fit_linear_probe(shots)
    assert torch.equal(first["weight"], second["weight"])
    predicted = METHODS["linear-probe"].score(first, {}, shots.features).argmax(-1)
    assert torch.equal(predicted, shots.labels)


def test_knn_votes_by_hand():
    keys = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    shots = Shots(keys, torch.tensor([0, 1, 1, 0]), torch.zeros(2, 2))
    tensors, params = fit_knn(shots, k=3)
    query = torch.tensor([[0.6, 0.8]])  # similarities 0.6, 0.96, 0.8, -0.6 -> neighbours 1, 2, 0
    assert torch.allclose(score_knn(tensors, params, query), torch.tensor([[1 / 3, 2 / 3]]))
    assert fit_knn(shots)[1]["k"] == 2  # default: the smallest class size (capped at 5)


@pytest.mark.parametrize("seed", [0, 1])
def test_tip_adapter_f_is_deterministic_per_seed_and_moves_the_keys(seed):
    shots = separable_shots(seed=3)
    first, params = fit_tip_adapter_f(shots, seed=seed, epochs=5)
    second, _ = fit_tip_adapter_f(shots, seed=seed, epochs=5)
    assert torch.equal(first["keys"], second["keys"])
    assert not torch.equal(first["keys"], shots.features)
    assert params["alpha"] in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def test_with_one_shot_per_class_tip_adapter_keeps_the_papers_alpha_and_beta():
    assert search_alpha_beta(separable_shots(shots=1), separable_shots(shots=1).features) == (1.0, 1.0)


def test_tip_adapter_f_with_no_epochs_is_tip_adapter():
    shots = separable_shots()
    tuned, tuned_params = fit_tip_adapter_f(shots, epochs=0)
    plain, plain_params = fit_tip_adapter(shots)
    assert torch.equal(tuned["keys"], plain["keys"])
    assert (tuned_params["alpha"], tuned_params["beta"]) == (plain_params["alpha"], plain_params["beta"])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_beats_a_wrong_text_classifier_on_separable_shots(method):
    train = separable_shots(n_classes=4, shots=8, noise=0.2, seed=1, text_noise=10.0)
    test = separable_shots(n_classes=4, shots=20, noise=0.2, seed=1, text_noise=10.0)
    # the same seed draws the same centres first; the test points are fresh noise around them
    tensors, params = METHODS[method].fit(train)
    accuracy = (
        (METHODS[method].score(tensors, params, test.features).argmax(-1) == test.labels).float().mean()
    )
    assert accuracy >= 0.9
