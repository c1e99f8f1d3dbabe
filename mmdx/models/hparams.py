"""Checks of model hyper-parameters, shared by the encoders, the fusions and the factories.

A bad hyper-parameter is a configuration mistake: it raises :class:`HyperParameterError`, which is both an
:class:`~mmdx.errors.MmdxError` (the command line prints it without a traceback) and a ``ValueError`` (what
PyTorch users expect from a network constructor). Each message names the network, the argument, the value
received and what is expected.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mmdx.errors import ConfigError, MmdxError, did_you_mean, look_up_option


class HyperParameterError(ConfigError, ValueError):
    """A network argument that cannot be used (wrong type, out of range, inconsistent with another one)."""


def check_positive_int(owner: str, name: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` > 0 (``bool`` is refused); raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise HyperParameterError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return value


def check_non_negative_int(owner: str, name: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` >= 0 (``bool`` is refused); raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HyperParameterError(f"{owner}: {name} must be a non-negative integer, got {value!r}")
    return value


def check_dropout(owner: str, name: str, value: object) -> float:
    """Return ``value`` as a float if it is a probability in ``[0, 1)``; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) < 1.0:
        raise HyperParameterError(f"{owner}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_heads(owner: str, dim: int, heads: object) -> int:
    """Return ``heads`` if it is a positive integer dividing ``dim`` (each head gets ``dim // heads``)."""
    heads = check_positive_int(owner, "heads", heads)
    if dim % heads:
        divisors = [h for h in range(1, min(dim, 16) + 1) if dim % h == 0]
        raise HyperParameterError(
            f"{owner}: heads={heads} does not divide dim={dim}; attention splits dim evenly across heads, "
            f"so choose heads among {divisors} or change dim"
        )
    return heads


def check_spatial_dims(owner: str, value: object) -> int:
    """Return ``value`` if it is 2 or 3; raise with the expected image shapes otherwise."""
    if isinstance(value, bool) or value not in (2, 3):
        raise HyperParameterError(
            f"{owner}: spatial_dims must be 2 (images [B, C, H, W]) or 3 (volumes [B, C, D, H, W]), "
            f"got {value!r}"
        )
    return int(value)  # type: ignore[arg-type]


def check_choice(owner: str, name: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; raise with a "did you mean" suggestion otherwise."""
    try:
        return look_up_option(str(value), choices, what=name)
    except MmdxError as error:
        raise HyperParameterError(f"{owner}: {error}") from None


def check_keyword_arguments(owner: str, builder: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Raise if ``kwargs`` holds a name ``builder`` does not accept (suggesting the closest) or lacks one it needs.

    Python would raise a ``TypeError`` anyway; this turns it into a message naming the accepted arguments,
    which is what someone editing a YAML config needs to see.
    """
    parameters = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [
        name
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    for key in kwargs:
        if key not in accepted:
            raise HyperParameterError(
                f"{owner}: unknown argument '{key}'{did_you_mean(key, accepted)} "
                f"(accepted: {', '.join(accepted) or 'none'})"
            )
    required = [name for name in accepted if parameters[name].default is inspect.Parameter.empty]
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise HyperParameterError(f"{owner}: missing required argument(s) {', '.join(missing)}")
