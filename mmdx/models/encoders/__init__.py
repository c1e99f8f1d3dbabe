"""Encoders, one module per modality: :mod:`.imaging`, :mod:`.tabular`, :mod:`.text`."""
