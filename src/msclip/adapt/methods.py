"""Few-shot methods on frozen, L2-normalised image embeddings: fit a head, then score query embeddings.

Each method is a pair: ``fit(shots) -> (tensors, params)`` and ``score(tensors, params, features) ->
probabilities``. Tensors go into the head file, params (plain numbers) into its metadata.

- ``linear-probe``: multinomial logistic regression, full-batch L-BFGS (deterministic); with ``text_init``
  it starts from the zero-shot text classifier and blends it in with a learned per-class scale (LP++).
  The L2 strength is chosen by cross-validation on the shots, as CLIP's linear-probe protocol sweeps it.
- ``tip-adapter``: Zhang et al. 2022's training-free cache,
  ``logits = 100 f W_text^T + alpha * exp(-beta (1 - f F_cache^T)) L_onehot``; alpha and beta chosen by
  leave-one-out accuracy on the shots (the paper searches them on a validation split we do not have).
- ``tip-adapter-f``: the same cache with its keys fine-tuned (their recipe: AdamW, lr 1e-3, eps 1e-4, cosine
  schedule, 20 epochs, batch 256, cross-entropy on the Tip-Adapter logits), then alpha and beta searched.
- ``knn``: cosine k-nearest neighbours; probabilities are the vote shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: CLIP's logit scale, the constant in Tip-Adapter's formula.
CLIP_SCALE = 100.0
WEIGHT_DECAYS = (1e-2, 1e-4, 1e-6)
DEFAULT_WEIGHT_DECAY = 1e-3
TIP_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
TIP_BETAS = (0.5, 1.0, 2.0, 3.5, 5.5, 8.0, 12.0)


@dataclass
class Shots:
    """Labelled embeddings: (N, D) L2-normalised features, (N,) class indices, the (C, D) text classifier."""

    features: torch.Tensor
    labels: torch.Tensor
    text: torch.Tensor

    @property
    def n_classes(self) -> int:
        return self.text.shape[0]

    @property
    def onehot(self) -> torch.Tensor:
        return F.one_hot(self.labels, self.n_classes).float()


Tensors = dict[str, torch.Tensor]


# --- linear probe -----------------------------------------------------------------------------------


def fit_linear_probe(
    shots: Shots, text_init: bool = True, weight_decay: float | None = None, max_iter: int = 100, **_
) -> tuple[Tensors, dict]:
    """Logistic regression on the shots; ``weight_decay`` None: chosen by cross-validation on the shots
    (CLIP's linear-probe protocol sweeps it on held-out data)."""
    if weight_decay is None:
        weight_decay = search_weight_decay(shots, text_init, max_iter)
    tensors = _logistic_regression(shots, text_init, weight_decay, max_iter)
    return tensors, {"text_init": text_init, "weight_decay": weight_decay}


def _logistic_regression(shots: Shots, text_init: bool, weight_decay: float, max_iter: int) -> Tensors:
    """Minimise mean cross-entropy + weight_decay/2 ||V||^2 over W = V + diag(a) W_text and a bias.

    With ``text_init`` the start (V = 0, a = 100) is the zero-shot classifier and the per-class text scale
    ``a`` is learned unpenalised, as LP++'s class-wise blending: a wrong text classifier is scaled away,
    a good one kept. Without it, ``a`` stays 0: plain L2-regularised multinomial logistic regression.
    """
    free = torch.zeros_like(shots.text, requires_grad=True)
    scale = torch.full((shots.n_classes,), CLIP_SCALE if text_init else 0.0, requires_grad=text_init)
    bias = torch.zeros(shots.n_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [free, bias, scale] if text_init else [free, bias],
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        weight = free + scale[:, None] * shots.text
        loss = F.cross_entropy(shots.features @ weight.T + bias, shots.labels)
        loss = loss + 0.5 * weight_decay * free.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    weight = (free + scale[:, None] * shots.text).detach()
    return {"weight": weight, "bias": bias.detach(), "text_scale": scale.detach()}


def folds_of(labels: torch.Tensor, n_folds: int = 3) -> torch.Tensor | None:
    """A fold number per shot, every class spread over the folds (its i-th shot in fold i mod n);
    None when a class has a single shot (nothing to hold out)."""
    smallest = int(torch.bincount(labels).min())
    n = min(n_folds, smallest)
    if n < 2:
        return None
    rank = torch.empty_like(labels)
    for c in labels.unique():
        members = (labels == c).nonzero().flatten()
        rank[members] = torch.arange(len(members))
    return rank % n


def search_weight_decay(shots: Shots, text_init: bool, max_iter: int) -> float:
    """The weight decay of the grid with the most held-out shots right (ties: the stronger one); the
    held-out fits take half the iterations (a ranking needs less precision than the final fit)."""
    folds = folds_of(shots.labels)
    if folds is None:
        return DEFAULT_WEIGHT_DECAY
    scores = []
    for weight_decay in WEIGHT_DECAYS:
        correct = 0
        for fold in folds.unique():
            held = folds == fold
            train = Shots(shots.features[~held], shots.labels[~held], shots.text)
            tensors = _logistic_regression(train, text_init, weight_decay, max(1, max_iter // 2))
            predicted = score_linear_probe(tensors, {}, shots.features[held]).argmax(-1)
            correct += int((predicted == shots.labels[held]).sum())
        scores.append(correct)
    return WEIGHT_DECAYS[scores.index(max(scores))]


def score_linear_probe(tensors: Tensors, params: dict, features: torch.Tensor) -> torch.Tensor:
    return (features @ tensors["weight"].T + tensors["bias"]).softmax(dim=-1)


def fit_one_vs_rest(
    features: torch.Tensor,
    targets: torch.Tensor,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    max_iter: int = 100,
) -> Tensors:
    """Multi-label heads: one L2-regularised binary logistic regression per class (mean BCE), solved jointly
    by full-batch L-BFGS; ``targets`` is (N, C) 0/1. Scores are the per-class logits."""
    weight = torch.zeros(targets.shape[1], features.shape[1], requires_grad=True)
    bias = torch.zeros(targets.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(features @ weight.T + bias, targets.float())
        loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return {"weight": weight.detach(), "bias": bias.detach()}


# --- Tip-Adapter --------------------------------------------------------------------------------------


def tip_logits(
    features: torch.Tensor,
    text: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """``100 f W_text^T + alpha * exp(-beta (1 - f F^T)) L`` (Zhang et al. 2022, eq. 5-6)."""
    affinity = features @ keys.T
    return CLIP_SCALE * features @ text.T + alpha * torch.exp(-beta * (1 - affinity)) @ values


def search_alpha_beta(shots: Shots, keys: torch.Tensor) -> tuple[float, float]:
    """The (alpha, beta) with the best leave-one-out accuracy on the shots: the paper's start (1, 1) unless
    a point of the grid does strictly better (with one shot per class nothing can, so (1, 1) stays).

    Each shot is scored against the cache without its own entry, so the cache cannot just recall it.
    """
    affinity = shots.features @ keys.T
    own = torch.eye(len(keys), dtype=torch.bool)
    text_logits = CLIP_SCALE * shots.features @ shots.text.T

    def held_out_accuracy(alpha: float, beta: float) -> float:
        cache = torch.exp(-beta * (1 - affinity)).masked_fill(own, 0) @ shots.onehot
        return float(((text_logits + alpha * cache).argmax(-1) == shots.labels).float().mean())

    best = (held_out_accuracy(1.0, 1.0), 1.0, 1.0)
    for beta in TIP_BETAS:
        for alpha in TIP_ALPHAS:
            accuracy = held_out_accuracy(alpha, beta)
            if accuracy > best[0]:
                best = (accuracy, alpha, beta)
    return best[1], best[2]


def fit_tip_adapter(
    shots: Shots, alpha: float | None = None, beta: float | None = None, **_
) -> tuple[Tensors, dict]:
    """The cache is the shots themselves: keys = their embeddings, values = their one-hot labels."""
    keys = shots.features.clone()
    if alpha is None or beta is None:
        found_alpha, found_beta = search_alpha_beta(shots, keys)
        alpha = found_alpha if alpha is None else alpha
        beta = found_beta if beta is None else beta
    tensors = {"text": shots.text.clone(), "keys": keys, "values": shots.onehot}
    return tensors, {"alpha": float(alpha), "beta": float(beta)}


def fit_tip_adapter_f(
    shots: Shots,
    alpha: float = 1.0,
    beta: float = 1.0,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    **_,
) -> tuple[Tensors, dict]:
    """Tip-Adapter-F: train the cache keys from their initial alpha/beta, then search alpha/beta again."""
    generator = torch.Generator().manual_seed(seed)
    keys = shots.features.clone().requires_grad_(True)
    optimizer = torch.optim.AdamW([keys], lr=lr, eps=1e-4)
    steps_per_epoch = -(-len(shots.labels) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    for _epoch in range(epochs):
        for batch in torch.randperm(len(shots.labels), generator=generator).split(batch_size):
            logits = tip_logits(shots.features[batch], shots.text, keys, shots.onehot, alpha, beta)
            loss = F.cross_entropy(logits, shots.labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    trained = keys.detach()
    alpha, beta = search_alpha_beta(shots, trained)
    tensors = {"text": shots.text.clone(), "keys": trained, "values": shots.onehot}
    return tensors, {"alpha": alpha, "beta": beta, "epochs": epochs, "lr": lr, "seed": seed}


def score_tip_adapter(tensors: Tensors, params: dict, features: torch.Tensor) -> torch.Tensor:
    logits = tip_logits(
        features, tensors["text"], tensors["keys"], tensors["values"], params["alpha"], params["beta"]
    )
    return logits.softmax(dim=-1)


# --- kNN ----------------------------------------------------------------------------------------------


def fit_knn(shots: Shots, k: int | None = None, **_) -> tuple[Tensors, dict]:
    """Keep the shots; ``k`` defaults to the smallest number of shots of a class (at most 5)."""
    smallest = int(torch.bincount(shots.labels, minlength=shots.n_classes).min())
    k = k or max(1, min(5, smallest))
    return {"keys": shots.features.clone(), "values": shots.onehot}, {"k": int(k)}


def score_knn(tensors: Tensors, params: dict, features: torch.Tensor) -> torch.Tensor:
    """Vote shares of the k most similar shots (cosine); a tie goes to the class listed first."""
    k = min(params["k"], len(tensors["keys"]))
    nearest = (features @ tensors["keys"].T).topk(k, dim=-1).indices
    return tensors["values"][nearest].sum(dim=1) / k


@dataclass(frozen=True)
class Method:
    fit: Callable[..., tuple[Tensors, dict]]
    score: Callable[[Tensors, dict, torch.Tensor], torch.Tensor]
    uses_text: bool


METHODS: dict[str, Method] = {
    "linear-probe": Method(fit_linear_probe, score_linear_probe, uses_text=True),
    "tip-adapter": Method(fit_tip_adapter, score_tip_adapter, uses_text=True),
    "tip-adapter-f": Method(fit_tip_adapter_f, score_tip_adapter, uses_text=True),
    "knn": Method(fit_knn, score_knn, uses_text=False),
}
