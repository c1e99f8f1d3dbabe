"""mmdx workflows and the ``mmdx`` command line: each workflow is one readable function over library calls."""
