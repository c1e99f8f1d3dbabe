"""What the dashboard knows about the run it serves, loaded once per server process.

:class:`ReviewContext` holds the run's paths, the review store and the model's metadata (version, operating
threshold, preprocessing): nothing about any patient, so one object may be shared by every session
(``st.cache_resource``). Case data is read per request by the functions of :mod:`mmdx.review.worklist` and
:mod:`mmdx.review.case`, each of which checks the signed-in principal first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmdx.bundle import load_bundle
from mmdx.data.plan import ImagePlan
from mmdx.errors import MmdxError
from mmdx.keys import Modality
from mmdx.run import RunPaths
from mmdx.store import DEFAULT_IDLE_TIMEOUT_S, ReviewStore
from mmdx.store.schema import ID_LENGTH


def run_id_of(run_dir: str | Path) -> str:
    """The identifier under which the review store files verdicts and events of a run: the name of the run
    directory (``runs/demo`` -> ``demo``). Verdicts also carry the model version, which tells two trainings
    of one run name apart."""
    name = Path(run_dir).expanduser().resolve().name
    if not name or len(name) > ID_LENGTH or name != name.strip():
        raise MmdxError(
            f"the run directory name {name!r} cannot identify the run in the review store: it must be 1 to "
            f"{ID_LENGTH} characters without leading or trailing spaces; rename the directory"
        )
    return name


@dataclass(frozen=True)
class ReviewContext:
    """A run opened for review (no patient data).

    Attributes:
        run: the run directory's paths; ``run_id``: see :func:`run_id_of`.
        store: the review store (thread-safe; one per process).
        model_version: the bundle's model version (a checksum of its weights).
        threshold: the operating threshold on calibrated probabilities.
        image_config: the model's image preprocessing, ``None`` when the model reads no image.
        tabular_features: catalogue keys of the model's vital signs and labs, in model order;
            ``numeric_columns``: numeric case-table columns the model reads (e.g. ``age``).
        modalities: the modalities the model reads.
        cohort_dir: the cohort the run was evaluated on, ``None`` when it cannot be found (images and notes
            are then unavailable; predictions and explanations still show).
        positive_meaning: what the positive class means (``task.positive`` of the cohort).
        idle_timeout_s: seconds of inactivity after which a dashboard session is signed out.
    """

    run: RunPaths
    run_id: str
    store: ReviewStore
    model_version: str
    threshold: float
    image_config: ImagePlan | None
    tabular_features: tuple[str, ...]
    numeric_columns: tuple[str, ...]
    modalities: tuple[Modality, ...]
    cohort_dir: Path | None
    positive_meaning: str
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    notes: tuple[str, ...] = field(default=())

    @property
    def explanations_dir(self) -> Path:
        return self.run.explanations


def open_review_context(
    run_dir: str | Path,
    store: ReviewStore | str,
    *,
    cohort_dir: str | Path | None = None,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
) -> ReviewContext:
    """Open a run for review.

    Args:
        run_dir: a run directory with ``bundle/`` and ``predictions.parquet``.
        store: an open :class:`ReviewStore` or its SQLAlchemy URL.
        cohort_dir: where the cohort's images and notes are; default: the cohort recorded in the bundle's
            card (training time), which must still exist.
        idle_timeout_s: idle timeout of dashboard sessions, seconds (> 0).

    Raises:
        MmdxError: the run lacks its bundle or predictions, or ``cohort_dir`` does not exist.
    """
    run = RunPaths(Path(run_dir).expanduser().resolve())
    run.require("bundle", "predictions")
    if not idle_timeout_s > 0:
        raise MmdxError(f"the idle timeout must be a positive number of seconds, got {idle_timeout_s!r}")
    bundle = load_bundle(run.bundle)
    notes: list[str] = []
    if cohort_dir is not None:
        cohort = Path(cohort_dir).expanduser().resolve()
        if not cohort.is_dir():
            raise MmdxError(f"cohort directory not found: {cohort}; pass the folder the run was evaluated on")
    else:
        recorded = (bundle.card.get("cohort") or {}).get("path")
        cohort = Path(recorded).expanduser().resolve() if recorded else None
        if cohort is not None and not cohort.is_dir():
            notes.append(
                f"The cohort recorded at training ({recorded}) is not reachable: images, notes and values "
                "without an explanation cannot be shown. Start the dashboard with --cohort DIR."
            )
            cohort = None
    task = bundle.card.get("task") or {}
    return ReviewContext(
        run=run,
        run_id=run_id_of(run.root),
        store=ReviewStore(store) if isinstance(store, str) else store,
        model_version=bundle.version,
        threshold=bundle.threshold,
        image_config=bundle.preprocessing.image_config,
        tabular_features=tuple(bundle.preprocessing.features),
        numeric_columns=tuple(bundle.preprocessing.numeric_columns),
        modalities=tuple(Modality(m) for m in bundle.preprocessing.modalities),
        cohort_dir=cohort,
        positive_meaning=str(task.get("positive") or "positive class"),
        idle_timeout_s=float(idle_timeout_s),
        notes=tuple(notes),
    )
