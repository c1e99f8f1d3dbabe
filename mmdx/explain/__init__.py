"""Explanations: Captum attributions per modality, exact modality Shapley values, faithfulness checks."""
