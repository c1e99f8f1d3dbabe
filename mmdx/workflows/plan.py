"""The image preprocessing plan of a cohort, without training (``mmdx plan``, ``mmdx validate --config``).

:func:`plan_images` fits the plan a training run with a config would fit (or takes a bundle's own plan)
and checks every image of a validated cohort against it; :func:`plan_cohort` does the same from a cohort
directory and returns everything ``mmdx plan`` prints; :func:`validate_against_plan` is ``mmdx validate``:
the validation, and with a config or bundle the plan's checks added to its report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmdx.config import Config, ImageConfig, apply_overrides, config_from_dict, load_config
from mmdx.data.plan import CohortImagePlan, plan_cohort_images
from mmdx.data.validation import ValidatedCohort, validate_cohort
from mmdx.errors import MmdxError

if TYPE_CHECKING:  # the bundle brings torch: imported where a bundle is asked for
    from mmdx.bundle import Bundle


def load_plan_source(
    config: str | Path | None = None, overrides: Sequence[str] = (), bundle: str | Path | None = None
) -> Config | ImageConfig | Bundle | None:
    """The config (with ``overrides``), the loaded bundle, or -- for overrides alone -- the default image
    settings with them, that a plan comes from; ``None`` for none of these."""
    if config is not None and bundle is not None:
        raise MmdxError("give --config or --bundle, not both: a bundle carries its own plan")
    if bundle is not None:
        if overrides:
            raise MmdxError("--set applies to a config; a bundle's plan is fixed")
        from mmdx.bundle import load_bundle

        return load_bundle(bundle)
    if config is not None:
        return load_config(config, list(overrides))
    if overrides:  # the default image settings with these changes
        document = apply_overrides({"model": {"image": {"name": "small_cnn"}}}, list(overrides))
        return config_from_dict(document, source="--set").data.image
    return None


def plan_images(cohort: ValidatedCohort, source: Config | ImageConfig | Bundle) -> CohortImagePlan | None:
    """Fit the plan of ``source`` (a config, or its image section) to ``cohort``'s training images, or apply
    ``source``'s own plan (a bundle), and record every image's warnings in the cohort's report. ``None``
    when the model reads no image."""
    if isinstance(source, ImageConfig):
        return plan_cohort_images(cohort, source)
    if isinstance(source, Config):
        if source.model.image is None:
            return None
        return plan_cohort_images(cohort, source.data.image)
    from mmdx.bundle import Bundle

    if not isinstance(source, Bundle):
        raise TypeError(
            f"a plan comes from a config, its image section or a bundle, not {type(source).__name__}"
        )
    plan = source.image_plan
    return None if plan is None else plan_cohort_images(cohort, plan=plan)


@dataclass
class PlanResult:
    """What ``mmdx plan`` reports: the cohort, the fingerprint of its training images (``None`` for a
    bundle's plan), the plan, and the image warnings under it."""

    cohort: ValidatedCohort
    planned: CohortImagePlan
    source: str

    def to_dict(self) -> dict:
        examples = [
            {"case_id": case_id, "code": str(issue.code), "message": issue.message}
            for case_id, issues in self.planned.issues.items()
            for issue in issues
        ]
        return {
            "cohort": {"name": self.cohort.name, "path": str(self.cohort.root)},
            "source": self.source,
            "fingerprint": None if self.planned.fingerprint is None else self.planned.fingerprint.to_dict(),
            "plan": self.planned.plan.to_dict(),
            "description": self.planned.plan.describe(),
            **self.planned.summary(),
            "warnings": examples,
        }


def plan_cohort(
    cohort_dir: str | Path,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    bundle: str | Path | None = None,
    workers: int = 1,
) -> PlanResult:
    """Validate ``cohort_dir``, fit the image plan of ``config`` (default: every image setting ``auto``,
    the default voxel budgets) or take ``bundle``'s, and check every image against it."""
    source = load_plan_source(config, overrides, bundle) or ImageConfig()
    cohort = validate_cohort(cohort_dir, workers=workers)
    if not cohort.report.usable:
        raise MmdxError(f"no usable case in {cohort_dir}; run 'mmdx validate {cohort_dir}' for the reasons")
    planned = plan_images(cohort, source)
    if planned is None:
        raise MmdxError(
            "the model of this config/bundle reads no image (model.image is null): nothing to plan"
        )
    label = (
        f"bundle {bundle}"
        if bundle is not None
        else (f"config {config}" if config else "default image settings")
    )
    return PlanResult(cohort=cohort, planned=planned, source=label)


@dataclass
class ValidationResult:
    """What ``mmdx validate`` reports: the validated cohort (the plan's warnings are in its report) and the
    plan its images were checked against (``None`` without a config or bundle, or when the model reads no
    image, or when no case is usable)."""

    cohort: ValidatedCohort
    planned: CohortImagePlan | None


def validate_against_plan(
    cohort_dir: str | Path | None,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    bundle: str | Path | None = None,
    *,
    check_images: bool = True,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationResult:
    """Validate ``cohort_dir`` (default: ``data.cohort`` of ``config``) and, with a config or bundle, check
    every image against the plan it gives (:func:`plan_images`). ``progress(done, total)`` while images are
    decoded."""
    source = load_plan_source(config, overrides, bundle)
    if cohort_dir is None:
        cohort_dir = getattr(getattr(source, "data", None), "cohort", None)
        if cohort_dir is None:
            raise MmdxError("no cohort given: pass COHORT, or --config with data.cohort set")
    cohort = validate_cohort(cohort_dir, check_images=check_images, workers=workers, progress=progress)
    planned = plan_images(cohort, source) if source is not None and cohort.report.usable else None
    return ValidationResult(cohort, planned)
