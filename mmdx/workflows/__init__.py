"""The workflows of mmdx, one module each, as library functions that return typed results.

:mod:`.train` (``TrainResult``), :mod:`.evaluate` (``EvaluationResult``), :mod:`.explain`
(``ExplainResult``), :mod:`.predict` (``PredictResult``), :mod:`.audit` (``AuditResult``) and
:mod:`.sample_run` (a small run to try the dashboard on). The command line (``pipelines/``) only parses
arguments, calls one of these and prints; benchmarks and tests call them directly. They read and write the
run directory only through :class:`mmdx.run.RunPaths`.
"""
