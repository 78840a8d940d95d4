"""The sentence-transformers embedder with the packaged all-MiniLM-L6-v2, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.retrieval.embedder import EmbeddingModelMissing, SentenceTransformerEmbedder
from tests.conftest import REPO

FOLDER = REPO / "models" / "all-minilm-l6-v2"


@pytest.mark.model
def test_texts_become_unit_vectors_where_related_passages_are_closest() -> None:
    embedder = SentenceTransformerEmbedder(FOLDER, batch_size=2)
    assert embedder.model_id == "sentence-transformers/all-minilm-l6-v2"
    assert embedder.dimension == 384
    texts = [
        "What homework did we agree on last week?",
        "Therapist: Let us keep the walks, and add five minutes of slow breathing before bed.",
        "Patient: My sister sent a photo of her garden.",
    ]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    question, homework, garden = vectors
    assert question @ homework > question @ garden
    # Batching changes nothing: one text alone embeds to (almost) the same vector.
    assert np.allclose(embedder.embed(texts[1:2])[0], homework, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_a_missing_model_is_a_clear_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelMissing, match="appliance models install"):
        SentenceTransformerEmbedder(tmp_path / "nothing-here").embed(["hello"])
