"""Audit: the model audit report (its statistics with confidence intervals: :mod:`mmdx.statistics`)."""
