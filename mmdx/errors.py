"""Errors mmdx raises for bad input: each says what was received, what was expected and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MmdxError(Exception):
    """A user-facing error. The command line prints its message without a traceback."""


class ConfigError(MmdxError):
    """A config file or override that does not match the schema."""


class CohortError(MmdxError):
    """A cohort directory that cannot be used at all (a single bad case is a validation issue instead)."""


class BundleError(MmdxError):
    """A model bundle that is incomplete, tampered with, or from another schema version."""


def did_you_mean(value: str, options: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest option, or ``""`` when nothing is close."""
    options = [str(o) for o in options]
    matches = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
    if not matches:
        # a misspelled compound key often still contains the right one ("hiden_dim" -> "dim")
        parts = [o for o in options if len(o) >= 3 and (o in str(value) or str(value) in o)]
        matches = sorted(parts, key=lambda o: -len(o))[:1]
    return f"; did you mean '{matches[0]}'?" if matches else ""


def look_up_option(value: str, options: Iterable[str], what: str = "option") -> str:
    """Return ``value`` if it is one of ``options``; otherwise raise with the valid choices and a suggestion."""
    options = list(options)
    if value in options:
        return value
    raise MmdxError(
        f"unknown {what} '{value}'{did_you_mean(value, options)} (choose from: {', '.join(sorted(options))})"
    )
