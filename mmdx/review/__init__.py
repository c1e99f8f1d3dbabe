"""The logic of the clinician review dashboard, kept out of the Streamlit pages so that it is unit-tested.

A run directory and the review store go in; what the pages show comes out:

* :func:`open_review_context` opens a run for review (:class:`ReviewContext`: paths, store, model
  metadata; nothing about any patient, so one may be shared by every session);
* :func:`build_worklist` (with :func:`filter_worklist` and :func:`sort_worklist`) lists the cases with
  calibrated risk, uncertainty (:mod:`mmdx.review.uncertainty`), modalities and review status;
* :func:`build_case_view` gathers one case: prediction, modality contributions, the image at its native
  resolution in three planes with the attribution map on its grid (:mod:`mmdx.review.viewer`) and on the
  model's grid (:mod:`mmdx.review.rendering`), values, highlighted note (:mod:`mmdx.review.highlight`); it
  records ``open_case``; :func:`explanation_offer` says whether a missing explanation may be computed;
* :func:`evaluation_choices` and :func:`evaluation_summary`: the run's own evaluation or an external one
  (``RUN/external/<site>/``), as aggregates (:mod:`mmdx.review.evaluations`);
* :func:`submit_case_verdict`, :func:`verdict_history`, :func:`audit_trail`, :func:`audit_csv`,
  :func:`ensure_demo_account`.

Every function that returns case data takes the signed-in :class:`~mmdx.store.Principal` and checks it
(:func:`authorize_case_reading`); the store checks verdicts, audit and accounts itself.
"""

from mmdx.review.access import CASE_READER_ROLES, authorize_case_reading, may
from mmdx.review.access_trail import AuditQuery, audit_csv, audit_trail
from mmdx.review.accounts import DEMO_ACCOUNT, ensure_demo_account, sign_in_locks_frame, users_frame
from mmdx.review.case import (
    ATTRIBUTION_MEANING,
    GATE_MEANING,
    NO_EXPLANATION,
    SHAPLEY_MEANING,
    SHAPLEY_VS_ATTRIBUTION,
    SHAPLEY_VS_ATTRIBUTION_HELP,
    CaseView,
    ModalityContribution,
    TabularRow,
    build_case_view,
    open_cohort,
    uninformative_gates,
)
from mmdx.review.context import ReviewContext, open_review_context, run_id_of
from mmdx.review.evaluations import (
    OWN_EVALUATION,
    EvaluationSummary,
    evaluation_choices,
    evaluation_summary,
)
from mmdx.review.explanations import (
    ExplanationOffer,
    ExplanationStatus,
    LoadedExplanation,
    authorize_explaining,
    explanation_offer,
)
from mmdx.review.overlay import OverlayDecision, greyed, overlay_decision, overlay_decision_for
from mmdx.review.rendering import (
    WINDOW_PRESETS,
    CaseImage,
    WindowLevel,
    encode_png,
    png_data_url,
    window_presets,
)
from mmdx.review.session import ReviewSession, expire_if_idle, sign_in, sign_out
from mmdx.review.uncertainty import (
    NEAR_THRESHOLD_MARGIN,
    UNCERTAINTY_DEFINITION,
    near_threshold,
    predictive_entropy,
)
from mmdx.review.verdicts import (
    VerdictEntry,
    current_verdicts,
    helpful_options,
    submit_case_verdict,
    verdict_history,
    verdicts_csv,
)
from mmdx.review.viewer import NativeImage, Plane, load_native_image, viewer_presets
from mmdx.review.worklist import (
    REVIEW_GROUPS,
    SORT_LABELS,
    WORKLIST_COLUMNS,
    SortOrder,
    WorklistFilter,
    build_worklist,
    default_filter,
    filter_worklist,
    sort_worklist,
)

__all__ = [
    "OWN_EVALUATION",
    "EvaluationSummary",
    "evaluation_choices",
    "evaluation_summary",
    "OverlayDecision",
    "greyed",
    "overlay_decision",
    "overlay_decision_for",
    "ATTRIBUTION_MEANING",
    "CASE_READER_ROLES",
    "DEMO_ACCOUNT",
    "GATE_MEANING",
    "NEAR_THRESHOLD_MARGIN",
    "NO_EXPLANATION",
    "SHAPLEY_MEANING",
    "SHAPLEY_VS_ATTRIBUTION",
    "SHAPLEY_VS_ATTRIBUTION_HELP",
    "REVIEW_GROUPS",
    "SORT_LABELS",
    "UNCERTAINTY_DEFINITION",
    "WINDOW_PRESETS",
    "WORKLIST_COLUMNS",
    "AuditQuery",
    "CaseImage",
    "CaseView",
    "ExplanationOffer",
    "ExplanationStatus",
    "NativeImage",
    "Plane",
    "LoadedExplanation",
    "ModalityContribution",
    "ReviewContext",
    "ReviewSession",
    "SortOrder",
    "TabularRow",
    "VerdictEntry",
    "WindowLevel",
    "WorklistFilter",
    "audit_csv",
    "audit_trail",
    "authorize_case_reading",
    "authorize_explaining",
    "default_filter",
    "explanation_offer",
    "load_native_image",
    "uninformative_gates",
    "viewer_presets",
    "build_case_view",
    "build_worklist",
    "current_verdicts",
    "encode_png",
    "png_data_url",
    "ensure_demo_account",
    "expire_if_idle",
    "filter_worklist",
    "helpful_options",
    "may",
    "near_threshold",
    "open_cohort",
    "open_review_context",
    "predictive_entropy",
    "run_id_of",
    "sign_in",
    "sign_out",
    "sort_worklist",
    "submit_case_verdict",
    "sign_in_locks_frame",
    "users_frame",
    "verdict_history",
    "verdicts_csv",
    "window_presets",
]
