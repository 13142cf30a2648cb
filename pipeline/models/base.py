"""The base of every model the pipeline trains and saves: it records how it was built.

As descript-audio-codec's models do, a :class:`Model` takes its constructor's signature as its
configuration: the keyword arguments a subclass's ``__init__`` is called with (bound to the signature,
defaults filled in) are recorded before the body runs, so no model copies its arguments by hand,
``model.hparams`` reads them and ``type(model)(**model.config())`` builds the same network again.
What its training stage measured after building it is its :attr:`Model.calibration`
(pipeline.models.calibration), never a constructor argument. Saving and loading:
pipeline.models.persistence (the class is named in the file, so a file rebuilds whichever model it
holds).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from torch import nn

from pipeline.models.calibration import Calibration

__all__ = ["MODEL_CLASSES", "Model"]

MODEL_CLASSES: dict[str, type[Model]] = {}  # class name -> class: what a model file's ``model`` entry names


class Model(nn.Module):
    """A module whose constructor arguments are its configuration (see the module docstring).

    Subclasses take plain keyword arguments (no ``*args``/``**kwargs``: every setting has a name a
    params block can use) and call ``super().__init__()`` as any module does."""

    _arguments: dict[str, Any]
    calibration: Calibration

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls._record_arguments()
        MODEL_CLASSES[cls.__name__] = cls

    @classmethod
    def _record_arguments(cls) -> None:
        """Wrap the class's own ``__init__`` so that a call records its bound arguments first."""
        init = cls.__dict__["__init__"]
        signature = inspect.signature(init)
        variadic = [p.name for p in signature.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if variadic:
            raise TypeError(f"{cls.__name__}.__init__ takes *{variadic[0]}: a model's settings must be named")

        @functools.wraps(init)
        def recording_init(self: Model, *args: Any, **kwargs: Any) -> None:
            if "_arguments" not in self.__dict__:  # the outermost constructor of a subclass chain records
                bound = signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                arguments = {name: value for name, value in bound.arguments.items() if name != "self"}
                object.__setattr__(self, "_arguments", copy.deepcopy(arguments))
                object.__setattr__(self, "calibration", Calibration())
            init(self, *args, **kwargs)

        cls.__init__ = recording_init  # type: ignore[method-assign,assignment]

    @property
    def hparams(self) -> Mapping[str, Any]:
        """The constructor arguments it was built with (read-only)."""
        return MappingProxyType(self._arguments)

    def config(self) -> dict[str, Any]:
        """The constructor arguments as a new dict: ``type(model)(**model.config())`` rebuilds it."""
        return copy.deepcopy(self._arguments)
