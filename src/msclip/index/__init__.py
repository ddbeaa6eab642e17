"""Embedding index and search: FAISS over ``msclip embed`` tables, with footprints and dates to filter on."""

from msclip.index.store import EmbeddingIndex, add_to_index, build_index, open_index
from msclip.index.tables import read_embeddings

__all__ = ["EmbeddingIndex", "add_to_index", "build_index", "open_index", "read_embeddings"]
