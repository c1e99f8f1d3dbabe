"""Hospital data into cohort directories: FHIR R4, MEDS, OMOP CDM and DICOMweb (``mmdx import SOURCE ...``).

``dicomweb`` is the one source that fills an existing cohort: it fetches the image series the cohort references
(``dicomweb:<study>/<series>``) from a PACS (:mod:`.dicomweb`).

Each source is one module here holding its library body (``import_fhir``, ``import_meds``, ``import_omop``:
source in, cohort directory out, returning an :class:`~mmdx.importers.output.ImportResult`) and its
command-line entry, an :class:`~mmdx.importers.registry.ImporterSpec` (name, help, ``add_arguments``,
``run``) registered in :data:`~mmdx.importers.registry.IMPORTERS`. What they share:

* :mod:`.caselist` -- the user's case list and which records attach to which case (by encounter, or by
  patient within the look-back window before the index time; never after it);
* :mod:`.staging` -- writing the cohort unit by unit, so that memory stays flat and an interrupted import
  resumes;
* :mod:`.output` -- options, results and the final cohort directory (cases, images, ``cohort.yaml``,
  ``import_report.json``).

**Adding a source** (say ``xyz``): write ``mmdx/importers/xyz.py`` with ``import_xyz(...)`` built on the
three modules above, an ``add_arguments(parser)`` and a ``run(args) -> int``, and end it with
``IMPORTERS.register(ImporterSpec(name="xyz", help=..., description=..., add_arguments=..., run=...))``;
then add ``xyz`` to the import at the end of :mod:`mmdx.importers.registry`. ``mmdx import xyz`` appears in
the command line with its ``--help``. Keep heavy imports (pandas, database drivers, format libraries)
inside the functions: the command line imports every source module to list them. A source that fills an
existing cohort rather than writing a new one (``mmdx import dicomweb URL COHORT``) registers the same way
with its own arguments.
"""

# the registry first, so that every source registers in its fixed order whichever module is imported first
from mmdx.importers.registry import IMPORTERS, ImporterSpec  # noqa: E402

__all__ = ["IMPORTERS", "ImporterSpec"]
