"""Models: encoders per modality (built by name from :mod:`mmdx.models.registry`), fusions
(:mod:`mmdx.models.fusion`) and the multimodal classifier (:mod:`mmdx.models.classifier`)."""
