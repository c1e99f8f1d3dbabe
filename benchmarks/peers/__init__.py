"""Peer comparison: mmdx against other multimodal toolkits and single-modality baselines on one cohort.

``export`` (main environment) writes a peer-neutral copy of a validated cohort; each peer's adapter reads
it in its own virtual environment (``setup.sh``) and writes test-split probabilities; ``run`` trains
everything, scores it on the same test cases and prints the table. See README.md in this folder.

Modules that run inside a peer's environment (``common`` and ``adapters``) import only numpy, pandas and
the standard library from here: never mmdx.
"""
