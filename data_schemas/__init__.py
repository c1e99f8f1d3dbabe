"""Versioned JSON Schemas and the clinical feature catalogue, shipped as package data."""

from __future__ import annotations

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent


def schema_path(name: str) -> Path:
    """Path of a packaged schema or catalogue file, e.g. ``schema_path("cohort.schema.json")``."""
    path = SCHEMA_DIR / name
    if not path.is_file():
        available = sorted(p.name for p in SCHEMA_DIR.iterdir() if p.suffix in {".json", ".yaml"})
        raise FileNotFoundError(f"no packaged schema '{name}' (available: {', '.join(available)})")
    return path
