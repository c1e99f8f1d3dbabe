"""mmdx: multimodal medical diagnosis -- imaging, vital signs/labs and clinical notes fused by gated attention,
explained with Captum, reviewed by clinicians and audited."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_bundle"]


def load_bundle(path):  # noqa: ANN001, ANN201 - re-exported with its full signature from mmdx.bundle
    """Load a trained model bundle (see :func:`mmdx.bundle.load_bundle`)."""
    from mmdx.bundle import load_bundle as _load

    return _load(path)
