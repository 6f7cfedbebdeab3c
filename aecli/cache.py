"""Loaded models, kept for the life of the process: one per (kind, model files, device), shared by
every thread (the workers of a folder batch share one model), behind one lock.

A kind of loaded model (codec.api.Codec, denoise.api.Denoiser, family.api.FamilyModel) follows
:class:`LoadedModel`: ``Kind.load(files, device)`` builds one from a model's files, and it keeps
those ``files`` and their ``name``.  The files are told apart by their weights' path and their
fingerprint, so weights retrained under the same name are loaded again.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .registry import ModelFiles


class LoadedModel(Protocol):
    """A model loaded from its files, ready to use."""

    files: ModelFiles

    @classmethod
    def load(cls, files: ModelFiles, device: Any) -> LoadedModel: ...

    @property
    def name(self) -> str: ...


M = TypeVar("M", bound=LoadedModel)


class ModelCache:
    """Loaded models by (kind, weights path, fingerprint, device); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._models: dict = {}

    def get(self, kind: type[M], files: ModelFiles, device: Any) -> M:
        """``kind.load(files, device)``, done once: under the lock, so that threads asking at once
        share one load."""
        key = (kind, str(files.weights), files.meta.get("fingerprint"), str(device))
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = self._models[key] = kind.load(files, device)
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


#: The one store of loaded models.
MODELS = ModelCache()


def loaded(kind: type[M], files: ModelFiles, device: Any = "cpu") -> M:
    """The model of ``files`` on ``device`` as a ``kind``, loaded once per process."""
    return MODELS.get(kind, files, device)
