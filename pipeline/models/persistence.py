"""Model files: ``model.pt`` = one :class:`pipeline.models.base.Model` as plain data.

    {"model": class name, "hparams": constructor keyword arguments,
     "calibration": its Calibration's values, "state_dict": weights}

Training writes these files (pipeline.training.run), inference and evaluation read them. Loading never
unpickles code (``weights_only``): the class is looked up by name among the project's models, rebuilt
from its arguments, and given its weights and calibration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, cast

import torch

from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.models.base import MODEL_CLASSES, Model
from pipeline.models.calibration import Calibration

M = TypeVar("M", bound=Model)
FILE_KEYS = ("model", "hparams", "calibration", "state_dict")


def read_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``: the file may hold tensors, numbers and strings only."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError("checkpoint not found", path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors, truncated zip, unsafe content
        raise PipelineError(f"not a readable checkpoint ({type(err).__name__}: {err})", path) from err


def write_weights(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` atomically, the same bytes for the same ``state``.

    ``torch.save`` given a file *name* names the zip's root folder after it, and the temporary name
    of :func:`pipeline.io.atomic_path` is random: the bytes would differ run to run. Given an open
    file, the root folder is always ``archive``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)


def model_state(model: Model) -> dict[str, Any]:
    """What :func:`save_model` writes for ``model``."""
    return {
        "model": type(model).__name__,
        "hparams": model.config(),
        "calibration": model.calibration.to_dict(),
        "state_dict": model.state_dict(),
    }


def save_model(path: str | Path, model: Model) -> None:
    """Write ``model`` (class, arguments, calibration, weights) to ``path`` atomically."""
    write_weights(path, model_state(model))


def model_from_state(state: dict[str, Any], kinds: tuple[type[Model], ...], where: str | Path) -> Model:
    """Rebuild the model of a :func:`model_state` record, which must be one of ``kinds``."""
    expected = " or ".join(k.__name__ for k in kinds)
    if not isinstance(state, dict) or any(key not in state for key in FILE_KEYS):
        raise PipelineError(f"not a model file (a {expected} file holds {', '.join(FILE_KEYS)})", where)
    cls = MODEL_CLASSES.get(str(state["model"]))
    if cls is None or not issubclass(cls, kinds):
        raise PipelineError(f"holds a {state['model']}, not a {expected}", where)
    try:
        model = cls(**state["hparams"])
        model.load_state_dict(state["state_dict"])
        model.calibration = Calibration.from_dict(state["calibration"])
    except (TypeError, ValueError, RuntimeError) as err:  # arguments or weights that do not fit the class
        raise PipelineError(f"cannot rebuild the {cls.__name__}: {str(err).splitlines()[0]}", where) from None
    return model.eval()


def load_model(path: str | Path, kind: type[M]) -> M:
    """The ``kind`` model saved in ``path`` by :func:`save_model`, in eval mode."""
    return cast(M, model_from_state(read_weights(path), (kind,), path))


def load_any(path: str | Path, kinds: tuple[type[Model], ...]) -> Model:
    """The model saved in ``path``, which may be any of ``kinds`` (e.g. the vocoders), in eval mode."""
    return model_from_state(read_weights(path), kinds, path)
