"""One module per peer, each run in that peer's own environment: read the export, train, write predictions.

Every adapter accepts ``--export --out --seed --epochs --patience --threads`` (``common.adapter_arguments``)
and writes ``predictions.csv`` and ``result.json`` with ``common.write_outputs``. They import only numpy,
pandas and ``benchmarks.peers.common`` at module level; their library is imported inside ``main``.
"""
