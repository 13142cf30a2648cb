"""Model settings in params.yaml, typed by the constructors they feed.

Each model block of params.yaml (``train_alignment.model``, ``train_synthesis.model`` and its
ablations, ``train_performancenet.model``, the vocoders' and the piano-roll baseline's
``generator``) is the keyword arguments of one model constructor, as descript-audio-codec maps
config keys straight onto constructors. The constructor's annotated signature is the type: a key it
does not take, a key the pipeline sets itself (from the mel group or the corpus), or a value of the
wrong type is a one-line error naming the params key, before any data is read: each training
stage script checks its own blocks first (``check_params``), and a test runs every stage's check on
every parameter file. The constructor's
defaults are the only defaults (no second copy in a config class to drift from them).
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["MEL_RECIPE", "PERFORMERS", "SYNTHESIS_MEL_RECIPE", "check_arguments"]

# arguments the pipeline fills in itself: the corpus's performers, the mel recipe's numbers
PERFORMERS = ("n_performers", "performer_names")
MEL_RECIPE = ("in_channels", "sample_rate", "n_fft", "hop_length", "fmin", "fmax")
SYNTHESIS_MEL_RECIPE = ("sample_rate", "n_fft", "fmin", "fmax")  # the synthesis model's harmonic prior


def _matches(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(arg, value) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (tuple, collections.abc.Sequence, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(_matches(a, v) for a, v in zip(args, value))
        return not args or all(_matches(args[0], v) for v in value)
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    return True  # an annotation this checker does not know: the constructor validates it


def _type_name(tp: Any) -> str:
    """``Sequence[int]``, ``float | None``: the annotation as a reader of params.yaml would write it."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "None"
    name = getattr(typing.get_origin(tp) or tp, "__name__", str(tp))
    return f"{name}[{', '.join('...' if a is Ellipsis else _type_name(a) for a in args)}]" if args else name


def check_arguments(
    constructor: Callable[..., Any], values: Mapping[str, Any], where: str, set_by_pipeline: tuple[str, ...] = ()
) -> None:
    """Raise a PipelineError naming ``where.<key>`` if ``values`` are not keyword arguments of
    ``constructor`` of the annotated types, or set one of ``set_by_pipeline``."""
    target = constructor.__init__ if inspect.isclass(constructor) else constructor
    signature = inspect.signature(target)
    hints = typing.get_type_hints(target)
    accepted = sorted(n for n, p in signature.parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD)
    for key, value in values.items():
        if key in set_by_pipeline:
            raise PipelineError(f"{where}.{key}: set by the pipeline (from the corpus or the mel group), not here")
        if key not in signature.parameters or key == "self":
            settable = [n for n in accepted if n not in set_by_pipeline]
            raise PipelineError(
                f"{where}.{key}: not a setting of {constructor.__name__} (known: {', '.join(settable)})"
            )
        if key in hints and not _matches(hints[key], value):
            raise PipelineError(f"{where}.{key}: must be {_type_name(hints[key])}, not {value!r}")
