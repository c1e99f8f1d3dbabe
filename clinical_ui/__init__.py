"""The clinician review dashboard: a Streamlit multipage app over :mod:`mmdx.review`.

Start it with ``mmdx review RUN`` or :func:`clinical_ui.launch.serve`. The pages (``views/``) hold layout
only; what they show is built and checked by :mod:`mmdx.review`.
"""
