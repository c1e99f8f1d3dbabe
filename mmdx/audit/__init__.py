"""Audit: statistics with confidence intervals and the model audit report."""
