"""The feature catalogue: vital signs and lab values with LOINC codes, canonical UCUM units and conversions.

An observation names its feature by LOINC code (``2160-0``) or catalogue key (``creatinine``); its value is
converted to the canonical unit with ``canonical = value * factor + offset`` and checked against the
plausible range.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from data_schemas import schema_path
from mmdx.data.issues import IssueCode
from mmdx.data.schemas import schema_errors
from mmdx.errors import CohortError, did_you_mean

DEFAULT_CATALOGUE = "feature_catalogue.json"


class ObservationError(ValueError):
    """A single observation that cannot be used; ``code`` is its validation reason code."""

    def __init__(self, code: IssueCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Feature:
    """One catalogue entry. ``plausible`` and ``reference`` are ``(low, high)`` in the canonical ``unit``."""

    key: str
    loinc: str
    display: str
    kind: str
    unit: str
    units: dict[str, tuple[float, float]]  # accepted unit -> (factor, offset) to the canonical unit
    aliases: dict[str, str]  # common non-UCUM spelling -> accepted UCUM unit
    plausible: tuple[float, float]
    reference: tuple[float, float] | None
    decimals: int = 1
    scale: str = "linear"  # "log": right-skewed (CRP, troponin, ...), modelled on a log scale

    @property
    def log_offset(self) -> float | None:
        """For log-scale features, the offset added before the logarithm (one unit of the last decimal)."""
        return 10.0**-self.decimals if self.scale == "log" else None

    def resolve_unit(self, unit: str) -> str:
        """The accepted UCUM unit meant by ``unit`` (exact, or a listed alias); raises ``UNIT_UNKNOWN``."""
        unit = str(unit).strip()
        if unit in self.units:
            return unit
        if unit in self.aliases:
            return self.aliases[unit]
        accepted = list(self.units) + list(self.aliases)
        raise ObservationError(
            IssueCode.UNIT_UNKNOWN,
            f"unit '{unit}' is not accepted for {self.key} ({self.loinc}){did_you_mean(unit, accepted)}; "
            f"accepted units: {', '.join(self.units)}",
        )

    def to_canonical(self, value: float, unit: str) -> float:
        """``value`` in ``unit`` converted to the canonical unit (no range check)."""
        factor, offset = self.units[self.resolve_unit(unit)]
        return float(value) * factor + offset

    def from_canonical(self, value: float, unit: str) -> float:
        """Inverse of :meth:`to_canonical`: a canonical value expressed in ``unit``."""
        factor, offset = self.units[self.resolve_unit(unit)]
        return (float(value) - offset) / factor

    def canonical_checked(self, value: object, unit: str) -> float:
        """Convert and check one raw observation; raises :class:`ObservationError` with its reason code."""
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ObservationError(
                IssueCode.VALUE_NOT_NUMERIC, f"{self.key}: value {value!r} is not a number"
            ) from None
        if not math.isfinite(number):
            raise ObservationError(IssueCode.VALUE_NOT_NUMERIC, f"{self.key}: value {value!r} is not finite")
        canonical = self.to_canonical(number, unit)
        low, high = self.plausible
        if not low <= canonical <= high:
            raise ObservationError(
                IssueCode.VALUE_IMPLAUSIBLE,
                f"{self.key}: {number:g} {unit} = {canonical:.4g} {self.unit} is outside the plausible range "
                f"{low:g}-{high:g} {self.unit}",
            )
        return canonical

    def is_abnormal(self, canonical: float) -> bool:
        """Whether a canonical value lies outside the reference (normal) range."""
        if self.reference is None:
            return False
        return not self.reference[0] <= canonical <= self.reference[1]


class FeatureCatalogue:
    """Ordered features, looked up by key or LOINC code."""

    def __init__(self, features: list[Feature], source: str = "") -> None:
        self.features = list(features)
        self.source = source
        self._by_name: dict[str, Feature] = {}
        for feature in self.features:
            for name in (feature.key, feature.loinc):
                if name in self._by_name:
                    raise CohortError(f"feature catalogue {source}: '{name}' is defined twice")
                self._by_name[name] = feature

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.features]

    def __len__(self) -> int:
        return len(self.features)

    def __iter__(self):
        return iter(self.features)

    def __getitem__(self, key: str) -> Feature:
        return self.lookup(key)

    def lookup(self, code: str) -> Feature:
        """The feature named by LOINC code or key; raises ``CODE_UNKNOWN`` with a suggestion."""
        code = str(code).strip()
        feature = self._by_name.get(code)
        if feature is None:
            raise ObservationError(
                IssueCode.CODE_UNKNOWN,
                f"code '{code}' is neither a LOINC code nor a key of the feature catalogue"
                f"{did_you_mean(code, self._by_name)}",
            )
        return feature

    def to_dict(self) -> dict:
        return {
            "schema_version": 1,
            "features": [
                {
                    "key": f.key,
                    "loinc": f.loinc,
                    "display": f.display,
                    "kind": f.kind,
                    "unit": f.unit,
                    "units": {u: {"factor": a, "offset": b} for u, (a, b) in f.units.items()},
                    "aliases": dict(f.aliases),
                    "plausible": list(f.plausible),
                    "reference": list(f.reference) if f.reference else None,
                    "decimals": f.decimals,
                    "scale": f.scale,
                }
                for f in self.features
            ],
        }

    @classmethod
    def from_dict(cls, document: dict, source: str = "") -> FeatureCatalogue:
        errors = schema_errors("feature_catalogue", _drop_nulls(document))
        if errors:
            raise CohortError(f"feature catalogue {source} is invalid: " + "; ".join(errors[:5]))
        features = []
        for item in document["features"]:
            units = {u: (float(s["factor"]), float(s.get("offset", 0.0))) for u, s in item["units"].items()}
            if item["unit"] not in units:
                raise CohortError(
                    f"feature catalogue {source}: {item['key']}: canonical unit {item['unit']!r} must be listed "
                    "under 'units' with factor 1"
                )
            reference = item.get("reference")
            features.append(
                Feature(
                    key=item["key"],
                    loinc=item["loinc"],
                    display=item["display"],
                    kind=item.get("kind", "lab"),
                    unit=item["unit"],
                    units=units,
                    aliases=dict(item.get("aliases", {})),
                    plausible=(float(item["plausible"][0]), float(item["plausible"][1])),
                    reference=(float(reference[0]), float(reference[1])) if reference else None,
                    decimals=int(item.get("decimals", 1)),
                    scale=item.get("scale", "linear"),
                )
            )
        return cls(features, source=source)

    @classmethod
    def load(cls, path: str | Path | None = None) -> FeatureCatalogue:
        """Load a catalogue JSON file; ``None`` loads the packaged default."""
        path = Path(path) if path is not None else schema_path(DEFAULT_CATALOGUE)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CohortError(f"feature catalogue not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise CohortError(f"feature catalogue {path} is not valid JSON: {exc}") from None
        return cls.from_dict(document, source=str(path))


def _drop_nulls(document: dict) -> dict:
    out = dict(document)
    out["features"] = [{k: v for k, v in f.items() if v is not None} for f in document.get("features", [])]
    return out
