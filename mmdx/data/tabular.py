"""Vital signs and lab values: harmonisation to canonical units, aggregation per case, and normalisation.

Observations arrive in long format (``case_id, code, value, unit[, time]``), named by LOINC code or catalogue
key, in whatever unit each site uses. :func:`harmonise_observations` converts each row to the catalogue's
canonical unit and reports every row it cannot use with a reason code; :func:`aggregate_latest` keeps one
value per case and feature (the latest by time); :class:`TabularNormaliser` is fitted on the training split.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmdx.data.catalogue import FeatureCatalogue, ObservationError
from mmdx.data.issues import Issue, IssueCode, Severity
from mmdx.errors import MmdxError

CANONICAL_COLUMNS = ["case_id", "feature", "value", "time", "row"]


@dataclass
class HarmonisedObservations:
    """Usable observations in canonical units plus the issues of the rows that were not used.

    ``table`` columns: ``case_id``, ``feature`` (catalogue key), ``value`` (float, canonical unit),
    ``time`` (UTC timestamp or NaT), ``row`` (1-based data row in the file, for ordering ties).
    ``case_issues`` maps a case_id to the issues of its rows; ``unattached`` holds rows naming no known case.
    """

    table: pd.DataFrame
    case_issues: dict[str, list[Issue]] = field(default_factory=dict)
    unattached: list[Issue] = field(default_factory=list)
    n_rows: int = 0


def harmonise_observations(
    observations: pd.DataFrame, catalogue: FeatureCatalogue, known_case_ids: set[str], file: str
) -> HarmonisedObservations:
    """Convert raw observation rows (all columns text) to canonical units; every unusable row gets an issue.

    Rows are handled in groups of (code, unit) so that a 10,000-case extract is checked in seconds.
    """
    frame = observations.reset_index(drop=True).copy()
    frame["row"] = np.arange(1, len(frame) + 1)
    result = HarmonisedObservations(table=pd.DataFrame(columns=CANONICAL_COLUMNS), n_rows=len(frame))

    def report(
        rows: pd.DataFrame, code: IssueCode, message_for_row, severity: Severity = Severity.ERROR
    ) -> None:
        for rec in rows.itertuples(index=False):
            issue = Issue(code, message_for_row(rec), file=file, severity=severity, row=int(rec.row))
            cid = rec.case_id
            if cid is not None and cid in known_case_ids:
                result.case_issues.setdefault(cid, []).append(issue)
            else:
                result.unattached.append(issue)

    unknown_case = frame["case_id"].isna() | ~frame["case_id"].isin(known_case_ids)
    report(
        frame[unknown_case],
        IssueCode.UNKNOWN_CASE_ID,
        lambda r: f"row {r.row}: case_id {r.case_id!r} is not in the cases table; the row is ignored",
    )
    frame = frame[~unknown_case]

    times = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    if "time" in frame.columns:
        has_time = frame["time"].notna()
        parsed = pd.to_datetime(frame.loc[has_time, "time"], errors="coerce", utc=True, format="ISO8601")
        bad_time = has_time & parsed.reindex(frame.index).isna()
        report(
            frame[bad_time],
            IssueCode.TIME_INVALID,
            lambda r: (
                f"row {r.row}: time {r.time!r} is not ISO 8601 (e.g. 2024-03-01T08:30:00Z); row ignored"
            ),
        )
        frame = frame[~bad_time]
        times = parsed.reindex(frame.index)

    pieces = []
    for (code, unit), group in frame.groupby(["code", "unit"], dropna=False, sort=False):
        try:
            if code is None or (isinstance(code, float) and np.isnan(code)):
                raise ObservationError(IssueCode.CODE_UNKNOWN, "code is empty")
            feature = catalogue.lookup(code)
            if unit is None or (isinstance(unit, float) and np.isnan(unit)):
                raise ObservationError(
                    IssueCode.UNIT_UNKNOWN, f"unit is empty for {feature.key}; expected e.g. {feature.unit}"
                )
            factor, offset = feature.units[feature.resolve_unit(unit)]
        except ObservationError as exc:
            message = str(exc)
            report(group, exc.code, lambda r, m=message: f"row {r.row}: {m}")
            continue
        numbers = pd.to_numeric(group["value"], errors="coerce")
        read_specially = pd.Series(False, index=group.index)
        for index in group.index[numbers.isna() & group["value"].notna()]:
            reading = read_value(str(group.at[index, "value"]))
            if reading.code is None:
                continue  # not a number at all: reported below
            read_specially[index] = True
            text = reading.message(feature.key, feature.resolve_unit(unit))
            severity = Severity.WARNING if reading.value is not None else Severity.ERROR
            report(group.loc[[index]], reading.code, lambda r, t=text: f"row {r.row}: {t}", severity)
            if reading.value is not None:
                numbers[index] = reading.value
        finite = numbers.notna() & np.isfinite(numbers.fillna(np.inf))
        report(
            group[~finite & ~read_specially],
            IssueCode.VALUE_NOT_NUMERIC,
            lambda r, f=feature: f"row {r.row}: {f.key} value {r.value!r} is not a number; row ignored",
        )
        numbers = numbers[finite]
        canonical = numbers * factor + offset
        low, high = feature.plausible
        implausible = (canonical < low) | (canonical > high)
        bad = group.loc[implausible[implausible].index]
        report(
            bad,
            IssueCode.VALUE_IMPLAUSIBLE,
            lambda r, f=feature, u=unit: (
                f"row {r.row}: {f.key} {r.value} {f.resolve_unit(u)} is outside the plausible range "
                f"{f.range_in(u)}; row ignored"
            ),
        )
        keep = canonical[~implausible]
        pieces.append(
            pd.DataFrame(
                {
                    "case_id": group.loc[keep.index, "case_id"].to_numpy(),
                    "feature": feature.key,
                    "value": keep.to_numpy(dtype=float),
                    "time": times.loc[keep.index].to_numpy(),
                    "row": group.loc[keep.index, "row"].to_numpy(),
                }
            )
        )
    if pieces:
        table = pd.concat(pieces, ignore_index=True)
        table["time"] = pd.to_datetime(table["time"], utc=True)
        result.table = table.sort_values("row", kind="stable").reset_index(drop=True)
    return result


_CENSORED = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*([+-]?\d+(?:[.,]\d+)?)\s*$")
_DECIMAL_COMMA = re.compile(r"^\s*([+-]?)(\d+),(\d+)\s*$")


@dataclass(frozen=True)
class ValueReading:
    """How a value that is not a plain number was read: ``value`` (``None`` when it cannot be used), the
    reason ``code`` and what was seen (``kind``: ``censored-below``/``censored-above``/``decimal-comma``/
    ``ambiguous-comma``)."""

    value: float | None
    code: IssueCode | None
    kind: str = ""
    raw: str = ""

    def message(self, key: str, unit: str) -> str:
        if self.kind.startswith("censored"):
            side = "below" if self.kind == "censored-below" else "above"
            return (
                f"{key} value {self.raw!r} is censored (the true value lies {side} {self.value:g} {unit}): "
                f"used as {self.value:g} {unit}"
            )
        if self.kind == "decimal-comma":
            return f"{key} value {self.raw!r} has a decimal comma: read as {self.value:g} {unit}"
        return (
            f"{key} value {self.raw!r} is ambiguous: a thousands separator or a decimal comma; write it with a "
            "decimal point (e.g. 1000 or 1.000); row ignored"
        )


def read_value(raw: str) -> ValueReading:
    """Read a value that ``float()`` refuses, by the documented policy:

    * a **censored** value (``<0.05``, ``>1000``, ``<=``, ``≥``) -- a result beyond the laboratory's
      detection or reporting limit -- is used at its limit and flagged ``VALUE_CENSORED``: the limit is the
      closest value the record supports, and dropping the row would lose that the value was extreme;
    * a **decimal comma** (``4,2``) is read as a decimal point and flagged ``VALUE_DECIMAL_COMMA``, unless
      three digits follow the comma after a non-zero integer part (``1,000``, ``4,200``): that may be a
      thousands separator, so the row is not used (``VALUE_DECIMAL_COMMA``, an error);
    * anything else is not a number (``code`` None: the caller reports ``VALUE_NOT_NUMERIC``).
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    censored = _CENSORED.match(text)
    if censored:
        limit = float(censored.group(2).replace(",", "."))
        kind = "censored-below" if censored.group(1) in ("<", "<=", "≤") else "censored-above"
        return ValueReading(limit, IssueCode.VALUE_CENSORED, kind, raw)
    comma = _DECIMAL_COMMA.match(text)
    if comma:
        sign, whole, fraction = comma.groups()
        if len(fraction) == 3 and whole.lstrip("0"):
            return ValueReading(None, IssueCode.VALUE_DECIMAL_COMMA, "ambiguous-comma", raw)
        return ValueReading(
            float(f"{sign}{whole}.{fraction}"), IssueCode.VALUE_DECIMAL_COMMA, "decimal-comma", raw
        )
    return ValueReading(None, None, "", raw)


def aggregate_latest(table: pd.DataFrame, case_ids: list[str], features: list[str]) -> pd.DataFrame:
    """One value per case and feature: the latest by time (rows without a time count as earliest; ties
    are broken by file order). Returns a ``[len(case_ids), len(features)]`` float frame with NaN = missing."""
    out = pd.DataFrame(np.nan, index=pd.Index(case_ids, name="case_id"), columns=features, dtype=float)
    if table.empty:
        return out
    ordered = table.assign(_has_time=table["time"].notna()).sort_values(
        ["_has_time", "time", "row"], kind="stable", na_position="first"
    )
    latest = ordered.groupby(["case_id", "feature"], sort=False).tail(1)
    wide = latest.pivot(index="case_id", columns="feature", values="value")
    wide = wide.reindex(index=out.index, columns=features)
    return wide.astype(float)


#: suffix of the columns holding the hours since a feature's latest value (``crp.hours_since``)
HOURS_SINCE = ".hours_since"


def hours_since_latest(
    table: pd.DataFrame, reference: pd.Series, case_ids: list[str], features: list[str]
) -> pd.DataFrame:
    """Hours from each feature's latest value to the case's reference time: ``[len(case_ids), len(features)]``.

    ``reference``: per case_id a UTC timestamp (its index time) or NaT, in which case the case's latest
    observation time is used. NaN where the feature is missing, undated, or the case has no reference.
    Columns are named ``<feature>.hours_since``.
    """
    columns = [f + HOURS_SINCE for f in features]
    out = pd.DataFrame(np.nan, index=pd.Index(case_ids, name="case_id"), columns=columns, dtype=float)
    dated = table[table["time"].notna()]
    if dated.empty:
        return out
    latest = dated.groupby(["case_id", "feature"])["time"].max().unstack("feature")
    latest = latest.reindex(index=case_ids, columns=features)
    fallback = dated.groupby("case_id")["time"].max().reindex(case_ids)
    ref = pd.to_datetime(reference.reindex(case_ids), utc=True)
    ref = ref.where(ref.notna(), fallback)
    hours = latest.apply(lambda col: (ref - pd.to_datetime(col, utc=True)).dt.total_seconds() / 3600.0)
    out.loc[:, :] = np.maximum(hours.to_numpy(dtype=float), 0.0)
    return out


class NotFittedError(MmdxError, AttributeError):
    """A fitted-only method of a preprocessing step was called before ``fit`` (an ``AttributeError`` too,
    as scikit-learn's ``NotFittedError`` is, so code that expected the old error still catches it)."""


class TabularNormaliser:
    """Robust per-feature scaling fitted on the training split: ``(x - median_) / scale_``, clipped to ±``clip``.

    ``scale_`` is IQR / 1.349 (the standard deviation for normal data), falling back to the standard deviation
    and then to 1 for constant or empty columns. Columns in ``log_offsets`` (right-skewed labs such as CRP or
    troponin) are first mapped to ``log(x + offset)``. Categorical columns map each training value to an index
    1..K (``vocab_``); 0 is reserved for unknown or missing.
    """

    def __init__(self, clip: float = 8.0, log_offsets: dict[str, float] | None = None) -> None:
        self.clip = clip
        self.log_offsets = dict(log_offsets or {})

    def _forward(self, numeric: pd.DataFrame) -> pd.DataFrame:
        out = numeric.astype(float).copy()
        for col, offset in self.log_offsets.items():
            if col in out.columns:
                out[col] = np.log(np.maximum(out[col], 0.0) + offset)
        return out

    def fit(self, numeric: pd.DataFrame, categorical: pd.DataFrame | None = None) -> TabularNormaliser:
        numeric = self._forward(numeric)
        self.numeric_columns_ = list(numeric.columns)
        self.median_ = {}
        self.scale_ = {}
        for col in self.numeric_columns_:
            values = numeric[col].dropna().to_numpy(dtype=float)
            if values.size == 0:
                median, scale = 0.0, 1.0
            else:
                median = float(np.median(values))
                q75, q25 = np.percentile(values, [75, 25])
                scale = float((q75 - q25) / 1.349)
                if not scale > 1e-12:
                    scale = float(values.std())
                if not scale > 1e-12:
                    scale = 1.0
            self.median_[col], self.scale_[col] = median, scale
        self.categorical_columns_ = list(categorical.columns) if categorical is not None else []
        self.vocab_ = {}
        for col in self.categorical_columns_:
            values = sorted({str(v) for v in categorical[col].dropna()})
            self.vocab_[col] = {v: i + 1 for i, v in enumerate(values)}
        return self

    def _check_fitted(self) -> None:
        """Raise :class:`NotFittedError` unless :meth:`fit` (or :meth:`from_dict`) has run."""
        if not hasattr(self, "numeric_columns_"):
            raise NotFittedError(
                "this TabularNormaliser is not fitted yet: call fit() on the training split (or load a fitted "
                "one with from_dict) before transforming"
            )

    @property
    def cardinalities(self) -> list[int]:
        """Number of embedding rows per categorical column (including index 0 = unknown)."""
        self._check_fitted()
        return [len(self.vocab_[c]) + 1 for c in self.categorical_columns_]

    def transform_numeric(self, numeric: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return ``values [N, F]`` (normalised, 0 where missing) and ``missing [N, F]`` (1 where missing)."""
        self._check_fitted()
        raw = self._forward(numeric.reindex(columns=self.numeric_columns_)).to_numpy(dtype=float)
        missing = np.isnan(raw)
        median = np.array([self.median_[c] for c in self.numeric_columns_])
        scale = np.array([self.scale_[c] for c in self.numeric_columns_])
        values = np.clip((raw - median) / scale, -self.clip, self.clip)
        values[missing] = 0.0
        return values.astype(np.float32), missing.astype(np.float32)

    def inverse_numeric(self, values: np.ndarray) -> np.ndarray:
        """Normalised values ``[..., F]`` back to canonical units (clipping is not undone)."""
        self._check_fitted()
        median = np.array([self.median_[c] for c in self.numeric_columns_])
        scale = np.array([self.scale_[c] for c in self.numeric_columns_])
        out = np.asarray(values, dtype=float) * scale + median
        for j, col in enumerate(self.numeric_columns_):
            if col in self.log_offsets:
                out[..., j] = np.exp(out[..., j]) - self.log_offsets[col]
        return out

    def transform_categorical(self, categorical: pd.DataFrame) -> np.ndarray:
        """Return ``[N, C]`` int64 indices; unseen or missing values map to 0."""
        self._check_fitted()
        out = np.zeros((len(categorical), len(self.categorical_columns_)), dtype=np.int64)
        for j, col in enumerate(self.categorical_columns_):
            if col in categorical.columns:
                vocab = self.vocab_[col]
                out[:, j] = [vocab.get(str(v), 0) if v is not None else 0 for v in categorical[col]]
        return out

    def to_dict(self) -> dict:
        self._check_fitted()
        return {
            "clip": self.clip,
            "log_offsets": self.log_offsets,
            "numeric_columns": self.numeric_columns_,
            "median": self.median_,
            "scale": self.scale_,
            "categorical_columns": self.categorical_columns_,
            "vocab": self.vocab_,
        }

    @classmethod
    def from_dict(cls, state: dict) -> TabularNormaliser:
        self = cls(
            clip=float(state["clip"]),
            log_offsets={k: float(v) for k, v in state.get("log_offsets", {}).items()},
        )
        self.numeric_columns_ = list(state["numeric_columns"])
        self.median_ = {k: float(v) for k, v in state["median"].items()}
        self.scale_ = {k: float(v) for k, v in state["scale"].items()}
        self.categorical_columns_ = list(state["categorical_columns"])
        self.vocab_ = {c: {str(k): int(v) for k, v in voc.items()} for c, voc in state["vocab"].items()}
        return self
