"""The workflows of mmdx, one module each, as library functions that return typed results.

The command line (``pipelines/``) only parses arguments, calls one of these and prints; benchmarks, tests
and the dashboard call them directly.
"""
