"""Explanations: Captum attributions per modality, exact modality Shapley values, faithfulness checks.

- :mod:`mmdx.explain.attribution`: :func:`~mmdx.explain.attribution.explain`, the one entry point
  (Integrated Gradients jointly over image, tabular values and text embeddings, or occlusion), returning a
  :class:`~mmdx.explain.attribution.CaseExplanation` per case;
- :mod:`mmdx.explain.inputs`: the cases to explain (:class:`~mmdx.explain.inputs.ExplainInputs`) and their
  baselines (:func:`~mmdx.explain.inputs.make_baselines`);
- :mod:`mmdx.explain.shapley`: :func:`~mmdx.explain.shapley.modality_shapley`, exact Shapley values of
  the modalities by masking;
- :mod:`mmdx.explain.faithfulness`: deletion curves, the model-randomisation test, convergence deltas;
- :mod:`mmdx.explain.truth`: scores against the planted ground truth of synthetic cohorts;
- :mod:`mmdx.explain.grids`: attributions back on the original image grid (character spans, words and
  phrases of a note: :mod:`mmdx.data.note_spans`, which the tokenisation shares);
- :mod:`mmdx.explain.artifacts`: the ``explanations/`` folder of a run (writing and reading).
"""
