"""Importers: data from hospital systems into a cohort directory (``mmdx import``).

``dicomweb`` fetches the image series a cohort references (``dicomweb:<study>/<series>``) from a PACS.
"""
