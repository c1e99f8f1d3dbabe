"""The feature catalogue: vital signs and lab values with LOINC codes, canonical UCUM units and conversions.

An observation names its feature by LOINC code (``2160-0``) or catalogue key (``creatinine``); its value is
converted to the canonical unit with ``canonical = value * factor + offset`` and checked against the
plausible range.

**Codes.** A code shaped like a LOINC code (``NNNNN-N``) is checked by its mod-10 check digit (the last
digit, computed from the others as LOINC specifies). A valid LOINC code the catalogue does not list is
reported as such (``LOINC_NOT_IN_CATALOGUE``: "LOINC 2339-0 is not in the feature catalogue"), with no
suggestion -- it is another test, not a typo. Only a code whose check digit is wrong (``LOINC_CHECK_DIGIT``)
gets a suggestion, and only a catalogue code one edit away. Other codes are matched against the catalogue
keys (``CODE_UNKNOWN``, with a spelling suggestion).

**Units.** A unit is normalised before lookup (:func:`normalise_unit`): Unicode NFKC (so the micro sign
``µ`` and the Greek mu ``μ`` agree), the micro prefix written ``u`` as in UCUM's ASCII form, ``×``/``x``
before a power of ten dropped and ``^`` or a laboratory system's ``E`` written ``*`` (``x10^9/L`` and
``x10E9/L`` are UCUM ``10*9/L``), the litre ``l`` written ``L`` (UCUM accepts both: ``mmol/l`` is
``mmol/L``) and a leading ``1/`` dropped (``1/min`` is ``/min``). Other letters keep their
case: UCUM is case-sensitive (``mg/dL``, not ``MG/DL``), so only spellings the catalogue lists as aliases
(``mg/dl``, ``K/uL``, ``C`` for a temperature) are accepted besides the UCUM units themselves.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from data_schemas import schema_path
from mmdx.data.issues import IssueCode
from mmdx.data.schemas import schema_errors
from mmdx.errors import CohortError, did_you_mean

DEFAULT_CATALOGUE = "feature_catalogue.json"


_LOINC = re.compile(r"^(\d{1,7})-(\d)$")
_POWER_OF_TEN = re.compile(r"^[x×*]\s*(?=10[\^*eE]\d)")
#: the litre written ``l``: UCUM knows ``l`` and ``L`` as the same unit (a prefix such as ``d`` or ``m`` kept)
_LITRE = re.compile(r"(?<![A-Za-z])([munpfdc]?)l\b")


def loinc_check_digit(number: str) -> int:
    """The mod-10 check digit of the digits of a LOINC code before its hyphen.

    From the right, every other digit starting with the rightmost is doubled (the digits of a two-digit
    product are added); the check digit brings the sum to a multiple of ten. ``loinc_check_digit("2160")``
    is 0 (creatinine, ``2160-0``).
    """
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit = digit // 10 + digit % 10
        total += digit
    return (10 - total % 10) % 10


def is_loinc_shaped(code: str) -> bool:
    """Whether ``code`` looks like a LOINC code (digits, a hyphen, one check digit)."""
    return _LOINC.match(code) is not None


def is_valid_loinc(code: str) -> bool:
    """Whether ``code`` is a LOINC code with a correct check digit."""
    match = _LOINC.match(code)
    return match is not None and loinc_check_digit(match.group(1)) == int(match.group(2))


def normalise_unit(unit: str) -> str:
    """A unit spelling reduced to a canonical form for lookup (see the module docs); case is kept."""
    text = unicodedata.normalize("NFKC", str(unit)).strip()
    text = text.replace("\u03bc", "u")  # NFKC turns the micro sign into the Greek mu; UCUM writes micro "u"
    text = _POWER_OF_TEN.sub("", text)
    text = re.sub(r"10[\^eE](\d+)", r"10*\1", text)
    text = _LITRE.sub(r"\1L", text)
    text = re.sub(r"^1/", "/", text)  # UCUM's 1/min is /min
    return re.sub(r"\s+", "", text)


def _one_edit_apart(a: str, b: str) -> bool:
    """One substituted, inserted, deleted or transposed character apart (Damerau-Levenshtein distance 1)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


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
        """The accepted UCUM unit meant by ``unit`` (exact, a listed alias, or either after
        :func:`normalise_unit`); raises ``UNIT_UNKNOWN``."""
        unit = str(unit).strip()
        if unit in self.units:
            return unit
        if unit in self.aliases:
            return self.aliases[unit]
        normal = normalise_unit(unit)
        for accepted, target in [*((u, u) for u in self.units), *self.aliases.items()]:
            if normalise_unit(accepted) == normal:
                return target
        accepted = list(self.units) + list(self.aliases)
        shown = unit if unit.isascii() else f"{unit} ({_code_points(unit)})"
        same_letters = [a for a in self.units if normalise_unit(a).lower() == normal.lower()]
        hint = f"; did you mean '{same_letters[0]}'?" if same_letters else did_you_mean(normal, accepted)
        raise ObservationError(
            IssueCode.UNIT_UNKNOWN,
            f"unit '{shown}' is not accepted for {self.key} ({self.loinc}){hint}; "
            f"accepted units: {', '.join(self.units)} (UCUM is case-sensitive)",
        )

    def range_in(self, unit: str, bounds: tuple[float, float] | None = None) -> str:
        """``bounds`` (default: the plausible range; canonical units) written in ``unit``, e.g.
        ``"8.84-2210 umol/L"``, followed by the canonical range when ``unit`` is not the canonical one."""
        low, high = self.plausible if bounds is None else bounds
        resolved = self.resolve_unit(unit)
        in_unit = sorted((self.from_canonical(low, resolved), self.from_canonical(high, resolved)))
        text = f"{in_unit[0]:.4g}-{in_unit[1]:.4g} {resolved}"
        if resolved != self.unit:
            text += f" ({low:g}-{high:g} {self.unit})"
        return text

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
                f"{self.key}: {number:g} {self.resolve_unit(unit)} is outside the plausible range "
                f"{self.range_in(unit)}",
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
        """The feature named by LOINC code or key; raises :class:`ObservationError` with
        ``LOINC_NOT_IN_CATALOGUE`` (a valid LOINC code not listed), ``LOINC_CHECK_DIGIT`` (a LOINC-shaped code
        with a wrong check digit, with a suggestion one edit away) or ``CODE_UNKNOWN`` (anything else, with
        a suggestion among the keys)."""
        code = str(code).strip()
        feature = self._by_name.get(code)
        if feature is not None:
            return feature
        match = _LOINC.match(code)
        if match is None:
            keys = [f.key for f in self.features]
            raise ObservationError(
                IssueCode.CODE_UNKNOWN,
                f"code '{code}' is neither a LOINC code nor a key of the feature catalogue{did_you_mean(code, keys)}",
            )
        check = loinc_check_digit(match.group(1))
        if check == int(match.group(2)):
            raise ObservationError(
                IssueCode.LOINC_NOT_IN_CATALOGUE,
                f"LOINC {code} is not in the feature catalogue; the row is not used (add the code, its units "
                "and ranges to a cohort catalogue to use it)",
            )
        close = [f for f in self.features if _one_edit_apart(code, f.loinc)]
        hint = f"; did you mean {close[0].loinc} ({close[0].key})?" if len(close) == 1 else ""
        raise ObservationError(
            IssueCode.LOINC_CHECK_DIGIT,
            f"code '{code}' is not a valid LOINC code: the check digit of {match.group(1)} is {check}, not "
            f"{match.group(2)}{hint}",
        )

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


def _code_points(text: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in text if not c.isascii())


def _drop_nulls(document: dict) -> dict:
    out = dict(document)
    out["features"] = [{k: v for k, v in f.items() if v is not None} for f in document.get("features", [])]
    return out
