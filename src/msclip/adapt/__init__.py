"""Few-shot and transductive adaptation: fit a small head on frozen image embeddings, or refine zero-shot
predictions over a batch of queries. See :mod:`msclip.adapt.methods` for the methods and their sources."""

from msclip.adapt.fit import DEFAULT_METHOD, adapt, fit_head, text_classifier
from msclip.adapt.head import Head, load_head, model_identity, save_head
from msclip.adapt.methods import METHODS, Shots
from msclip.adapt.trainset import Examples, read_examples
from msclip.adapt.transductive import transductive_probabilities

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "Examples",
    "Head",
    "Shots",
    "adapt",
    "fit_head",
    "load_head",
    "model_identity",
    "read_examples",
    "save_head",
    "text_classifier",
    "transductive_probabilities",
]
