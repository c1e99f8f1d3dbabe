"""Cohort data: readers (DICOM, NIfTI), validation with reason codes, tabular harmonisation, notes and
tokenisation, the multimodal dataset with its image cache, and the synthetic cohort generator."""
