"""Tests of the model audit report."""
