"""The report's figures, drawn from the report's own JSON data and embedded as self-contained SVG images.

Each function takes one section dict (as it appears in ``audit_report.json``) and returns an SVG document
(a string); :func:`data_uri` turns it into a ``data:image/svg+xml;base64,...`` URI for an ``<img>``, so the
HTML needs no file and no network, and figures cannot clash with each other or with the page's styles.
Drawing uses matplotlib's object API (no pyplot state) with a fixed hash salt, so the same data always gives
the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from mmdx.audit.sections import Section, is_ok

_COLOURS = ("#1f5f99", "#c4512b", "#3b8f4a", "#7a4fa0", "#8c6d1f", "#2b8c8c")
_GREY = "#8a8f98"
_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller and sharper
    "font.family": "sans-serif",
    "font.size": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e7eb",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
}
_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}


def to_svg(figure: Figure, salt: str) -> str:
    """The figure as a standalone SVG document, byte-for-byte reproducible for the same ``salt``."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        figure.savefig(buffer, format="svg", metadata=_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # no XML prolog, no DOCTYPE (nothing for a reader to fetch)


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _styled(figure: Figure, *shape: int, **kwargs: Any):
    with matplotlib.rc_context(_STYLE):
        return figure.subplots(*shape, **kwargs)


def _values(values: Sequence[Any]) -> np.ndarray:
    """A JSON list of numbers (None for NaN / infinity) as floats."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _ci(interval: dict[str, Any]) -> str:
    if interval.get("estimate") is None:
        return "n/a"
    if interval.get("low") is None:
        return f"{interval['estimate']:.3f}"
    return f"{interval['estimate']:.3f} ({interval['low']:.3f}-{interval['high']:.3f})"


def roc_figure(discrimination: dict[str, Any]) -> str:
    """ROC curves of every labelled split, the evaluation split drawn strongest."""
    figure = _figure(4.6, 4.0)
    ax = _styled(figure)
    evaluated = discrimination["split"]
    for i, (split, entry) in enumerate(discrimination["by_split"].items()):
        curve = entry.get("roc_curve")
        if not curve:
            continue
        main = split == evaluated
        ax.plot(
            _values(curve["fpr"]),
            _values(curve["tpr"]),
            drawstyle="default",
            color=_COLOURS[i % len(_COLOURS)],
            linewidth=2.0 if main else 1.0,
            alpha=1.0 if main else 0.6,
            label=f"{split} (n={entry['n']}): AUROC {_ci(entry['auroc'])}",
        )
    ax.plot([0, 1], [0, 1], color=_GREY, linestyle=":", linewidth=0.8, label="no skill")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (1 - specificity)", ylabel="sensitivity")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=7)
    return to_svg(figure, "roc")


def pr_figure(discrimination: dict[str, Any]) -> str:
    """Precision-recall curves of every labelled split, with the evaluation split's prevalence."""
    figure = _figure(4.6, 4.0)
    ax = _styled(figure)
    evaluated = discrimination["split"]
    for i, (split, entry) in enumerate(discrimination["by_split"].items()):
        curve = entry.get("pr_curve")
        if not curve:
            continue
        main = split == evaluated
        colour = _COLOURS[i % len(_COLOURS)]
        ax.step(
            _values(curve["recall"]),
            _values(curve["precision"]),
            where="pre",
            color=colour,
            linewidth=2.0 if main else 1.0,
            alpha=1.0 if main else 0.6,
            label=f"{split}: AUPRC {_ci(entry['auprc'])}",
        )
        if main:
            ax.axhline(
                curve["prevalence"], color=_GREY, linestyle=":", linewidth=0.8, label="prevalence (no skill)"
            )
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (sensitivity)", ylabel="precision (PPV)")
    ax.legend(loc="lower left", fontsize=7)
    return to_svg(figure, "pr")


def decision_figure(operating_point: dict[str, Any]) -> str:
    """Net benefit of the model, of treating everyone and of treating no one, per threshold probability."""
    curve = operating_point["decision_curve"]
    pt = _values(curve["thresholds"])
    model, treat_all = _values(curve["model"]), _values(curve["treat_all"])
    figure = _figure(5.2, 3.4)
    ax = _styled(figure)
    ax.plot(pt, model, color=_COLOURS[0], linewidth=1.8, label="model")
    ax.plot(pt, treat_all, color=_COLOURS[1], linewidth=1.0, label="treat all")
    ax.axhline(0.0, color=_GREY, linewidth=1.0, label="treat none")
    ax.axvline(
        operating_point["threshold"], color="#222", linestyle="--", linewidth=0.8, label="operating threshold"
    )
    prevalence = curve["prevalence"]
    ax.set(
        xlim=(0, 1),
        ylim=(-0.05, max(0.05, prevalence * 1.15)),
        xlabel="threshold probability",
        ylabel="net benefit",
    )
    ax.legend(loc="upper right", fontsize=7)
    return to_svg(figure, "decision")


def reliability_figure(calibration: dict[str, Any]) -> str:
    """Reliability diagram before and after calibration, with Wilson intervals per bin."""
    figure = _figure(4.8, 4.6)
    ax, hist = _styled(figure, 2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot([0, 1], [0, 1], color=_GREY, linestyle=":", linewidth=0.8, label="perfect calibration")
    for i, (name, title) in enumerate((("before", "before scaling"), ("after", "after scaling"))):
        curve = calibration[name]["reliability"]
        x, y = _values(curve["mean_predicted"]), _values(curve["observed_frequency"])
        low, high = _values(curve["ci_low"]), _values(curve["ci_high"])
        ece = calibration[name]["ece"]
        ax.errorbar(
            x,
            y,
            yerr=[np.clip(y - low, 0, None), np.clip(high - y, 0, None)],
            color=_COLOURS[i],
            marker="o",
            markersize=4,
            linewidth=1.2,
            capsize=2,
            alpha=0.5 if name == "before" else 1.0,
            label=f"{title}: ECE {_ci(ece)}",
        )
        centres = (_values(curve["bin_low"]) + _values(curve["bin_high"])) / 2
        width = float(np.min(_values(curve["bin_high"]) - _values(curve["bin_low"]))) if centres.size else 0.1
        offset = (-0.2 if name == "before" else 0.2) * width
        hist.bar(centres + offset, _values(curve["count"]), width=width * 0.4, color=_COLOURS[i], alpha=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), ylabel="observed frequency")
    ax.legend(loc="upper left", fontsize=7)
    hist.set(xlabel="mean predicted probability", ylabel="cases")
    return to_svg(figure, "reliability")


def subgroup_figure(subgroups: dict[str, Any]) -> str:
    """Forest plot: AUROC with its interval for every group of every attribute; flagged groups hollow."""
    labels, estimates, lows, highs, flagged = [], [], [], [], []
    for table in subgroups["attributes"]:
        for row in table["rows"]:
            labels.append(f"{table['attribute']}: {row['group']} (n={row['n']})")
            estimates.append(row["auroc"])
            lows.append(row["auroc_low"])
            highs.append(row["auroc_high"])
            flagged.append(bool(row["too_small"]))
    figure = _figure(5.6, 0.8 + 0.24 * max(1, len(labels)))
    ax = _styled(figure)
    y = np.arange(len(labels))[::-1]
    estimate, low, high = _values(estimates), _values(lows), _values(highs)
    for yi, e, lo, hi, small in zip(y, estimate, low, high, flagged, strict=True):
        colour = _GREY if small else _COLOURS[0]
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [yi, yi], color=colour, linewidth=1.2)
        if np.isfinite(e):
            ax.plot(e, yi, "o", color=colour, markerfacecolor="white" if small else colour, markersize=4.5)
    ax.axvline(0.5, color=_GREY, linestyle=":", linewidth=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set(xlim=(0, 1), xlabel="AUROC (hollow grey: group too small to judge)")
    ax.grid(axis="y", visible=False)
    return to_svg(figure, "subgroups")


def robustness_figure(robustness: dict[str, Any]) -> str:
    """AUROC under increasing image noise and tabular missingness, and with each modality removed."""
    rows = robustness["conditions"]
    intact = next(r for r in rows if r["kind"] == "intact")
    panels = [
        ("image_noise", "image noise sigma (intensity range = 1)"),
        ("tabular_missingness", "fraction of tabular values missing"),
    ]
    panels = [(kind, label) for kind, label in panels if any(r["kind"] == kind for r in rows)]
    figure = _figure(2.9 * (len(panels) + 1), 3.0)
    axes = np.atleast_1d(_styled(figure, 1, len(panels) + 1, sharey=True))
    base = intact["auroc"]
    for ax, (kind, label) in zip(axes, panels, strict=False):
        chosen = [intact, *[r for r in rows if r["kind"] == kind]]
        x = _values([r["level"] for r in chosen])
        e = _values([r["auroc"]["estimate"] for r in chosen])
        lo = _values([r["auroc"]["low"] for r in chosen])
        hi = _values([r["auroc"]["high"] for r in chosen])
        ax.fill_between(x, lo, hi, color=_COLOURS[0], alpha=0.15, linewidth=0)
        ax.plot(x, e, "o-", color=_COLOURS[0], markersize=3.5, linewidth=1.4)
        ax.set(xlabel=label)
    removed = [r for r in rows if r["kind"] == "modality_removed"]
    ax = axes[-1]
    names = ["none", *[r["modality"] for r in removed]]
    chosen = [intact, *removed]
    e = _values([r["auroc"]["estimate"] for r in chosen])
    lo = _values([r["auroc"]["low"] for r in chosen])
    hi = _values([r["auroc"]["high"] for r in chosen])
    ax.errorbar(
        np.arange(len(chosen)),
        e,
        yerr=[np.clip(e - lo, 0, None), np.clip(hi - e, 0, None)],
        fmt="o",
        color=_COLOURS[1],
        capsize=3,
        markersize=4,
    )
    ax.set_xticks(np.arange(len(chosen)), names)
    ax.set(xlabel="modality removed", xlim=(-0.5, len(chosen) - 0.5))
    if base.get("estimate") is not None:
        for a in axes:
            a.axhline(base["estimate"], color=_GREY, linestyle=":", linewidth=0.8)
    axes[0].set(ylabel="AUROC", ylim=(0, 1.01))
    return to_svg(figure, "robustness")


def deletion_figure(explanations: dict[str, Any]) -> str | None:
    """Deletion curves of the primary attribution method: output as the most-attributed inputs are removed
    first (solid) and in random order (dotted), per modality. None when no curve was computed."""
    method = explanations.get("primary_method")
    deletion = (explanations["methods"].get(method) or {}).get("deletion") or {}
    if not deletion:
        return None
    figure = _figure(2.9 * len(deletion), 3.0)
    axes = np.atleast_1d(_styled(figure, 1, len(deletion)))
    for i, (ax, (modality, curve)) in enumerate(zip(axes, deletion.items(), strict=True)):
        x = _values(curve["fractions"])
        ax.plot(
            x,
            _values(curve["mean_curve_attribution"]),
            color=_COLOURS[i],
            linewidth=1.6,
            label="by attribution",
        )
        ax.plot(
            x,
            _values(curve["mean_curve_random"]),
            color=_GREY,
            linestyle=":",
            linewidth=1.2,
            label="random order",
        )
        ax.set(title=f"{modality} (n={curve['n_cases']})", xlabel="fraction removed")
        ax.title.set_fontsize(8.5)
    axes[0].set(ylabel="mean calibrated probability")
    axes[0].legend(fontsize=7)
    return to_svg(figure, "deletion")


def comparison_figure(comparison: dict[str, Any]) -> str:
    """ROC curves of the two compared runs on their shared cases."""
    figure = _figure(4.6, 4.0)
    ax = _styled(figure)
    for i, run in enumerate(comparison["runs"]):
        curve = run["roc_curve"]
        ax.plot(
            _values(curve["fpr"]),
            _values(curve["tpr"]),
            color=_COLOURS[i],
            linewidth=1.8,
            label=f"{run['name']}: AUROC {_ci(run['auroc'])}",
        )
    ax.plot([0, 1], [0, 1], color=_GREY, linestyle=":", linewidth=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="sensitivity")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=7)
    return to_svg(figure, "comparison")


def report_figures(sections: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every figure the report's computed sections call for, as ``name -> data URI``."""
    draw: list[tuple[str, Section, Any]] = [
        ("roc", Section.DISCRIMINATION, roc_figure),
        ("pr", Section.DISCRIMINATION, pr_figure),
        ("decision", Section.OPERATING_POINT, decision_figure),
        ("reliability", Section.CALIBRATION, reliability_figure),
        ("subgroups", Section.SUBGROUPS, subgroup_figure),
        ("robustness", Section.ROBUSTNESS, robustness_figure),
        ("deletion", Section.EXPLANATIONS, deletion_figure),
        ("comparison", Section.COMPARISON, comparison_figure),
    ]
    out = {}
    for name, section, function in draw:
        content = sections.get(section.value)
        if is_ok(content):
            svg = function(content)
            if svg is not None:
                out[name] = data_uri(svg)
    return out
