"""JSON Schema validation of cohort documents (``cohort.yaml``, case rows, note lines, the catalogue, the
ground truth of synthetic cohorts)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Literal

import jsonschema

from data_schemas import schema_path

SchemaName = Literal["cohort", "case", "note", "feature_catalogue", "ground_truth", "defects"]


@cache
def _validator(name: SchemaName) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_path(f"{name}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_errors(name: SchemaName, document: Any) -> list[str]:
    """Every way ``document`` violates schema ``name``, as readable strings naming the key; empty if valid."""
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    out = []
    for error in errors:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        out.append(f"{where}: {error.message}")
    return out
