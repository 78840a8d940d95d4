"""Text embeddings for retrieval: a one-method `Embedder` protocol and its sentence-transformers
backend, loaded from the folder the manifest names (never from a hub).

Vectors are L2-normalised, so cosine similarity is a dot product (pgvector's `<#>` / `<=>`),
and every vector is stored with the model id and dimension that made it: vectors of two
models are never compared.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from appliance.errors import DomainError
from appliance.observability.loads import timed_model_load
from appliance.settings import Settings

if TYPE_CHECKING:
    import numpy as np

_models: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class EmbeddingModelMissing(DomainError):
    """The configured embedding model folder is not installed."""


class Embedder(Protocol):
    model_id: str

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dimension) float32 array of unit vectors, one row per text, in order."""
        ...


class SentenceTransformerEmbedder:
    def __init__(self, folder: Path, *, device: str = "cpu", batch_size: int = 32) -> None:
        self.folder, self.device, self.batch_size = folder, device, batch_size
        self.model_id = f"sentence-transformers/{folder.name}"

    def _model(self) -> Any:
        if not (self.folder / "modules.json").is_file():
            raise EmbeddingModelMissing(
                f"embedding model {self.folder.name!r} is not installed; "
                "run `appliance models install`"
            )
        key = (str(self.folder), self.device)
        with _lock:
            if key not in _models:
                from sentence_transformers import SentenceTransformer

                with timed_model_load(self.folder.name):
                    _models[key] = SentenceTransformer(
                        str(self.folder), device=self.device, local_files_only=True
                    )
            return _models[key]

    @property
    def dimension(self) -> int:
        model = self._model()
        # sentence-transformers 5.x renamed it; older releases have only the first name.
        named = getattr(model, "get_embedding_dimension", None)
        return int(named() if named else model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def embedder_for(settings: Settings, name: str | None = None) -> Embedder:
    """The embedder of manifest model `name` (default: the configured one), cached per
    process: searches embed the question with the model of the vectors they compare."""
    options = settings.retrieval
    folder = settings.resolved_models_dir / (name or options.embedder)
    return _embedder(folder, options.device, options.batch_size)


@functools.cache
def _embedder(folder: Path, device: str, batch_size: int) -> Embedder:
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return SentenceTransformerEmbedder(folder, device=device, batch_size=batch_size)
