"""A synthetic cohort generator whose Bayes-optimal posterior is known exactly.

The generative model (:mod:`.model`, written to ``cohort.yaml`` under ``generator`` so the posterior can be
recomputed from the files alone):

* label ``y ~ Bernoulli(prevalence)``; age, sex and site do not depend on ``y``.
* **image** (:mod:`.images`, :mod:`.dicom`; a CT-like chest phantom, 2D slice or 3D volume): a lesion is
  planted with probability ``lesion_prob[y]``; it is a solid nodule inside a lung, large and dense enough to
  be unmistakable, so the image tells ``L`` exactly and contributes ``log P(L | y=1) / P(L | y=0)``. Sites
  differ in field of view, slice spacing, noise, and a calibration offset in HU; some cases are DICOM
  series, others NIfTI.
* **observations** (:mod:`.cases`): each catalogue feature is a truncated normal in a transformed space
  (log for labs). Only the *latest* measurement of a causal feature depends on ``y``; earlier ones and all
  non-causal features are drawn from the same baseline for both classes. Values are written in the site's
  unit, rounded to a fixed number of decimals, so the likelihood of a written value is the probability
  mass of its rounding interval -- computed exactly from normal CDFs.
* **notes** (:mod:`.notes`): a few findings are each affirmed, negated or not mentioned with probabilities
  depending on ``y``; negated sentences reuse the finding's words ("no evidence of consolidation"), so a
  bag of words is misled. Filler sentences do not depend on ``y``.
* each modality is missing for some cases at random (independently of ``y``), so the posterior simply
  drops its term.

The posterior log-odds is ``logit(prevalence)`` plus one log-likelihood ratio per present modality.

With ``phi=True`` (:mod:`.phi`) the cohort is *identified*: every identifying DICOM attribute (nested
sequences and a private block included), extra columns of the cases table and the notes carry recognisable
canary values (``CANARY_NAME_00012``, ``CANARYMRN000012``, phone numbers, e-mails, addresses, dates of
birth), and the patient and case IDs are themselves canaries. The list of canaries is written to
``ground_truth/phi_canaries.json`` so that tests can prove that de-identification removed every one. The
random streams are the same as without ``phi``: the PHI is added on top, so labels, images, observations
and posteriors do not change. With ``defects=True`` (:mod:`.defects`) broken inputs are planted, each with
the reason code validation must report.
"""

from mmdx.data.synth.cases import SynthOptions
from mmdx.data.synth.generate import synthesize_cohort
from mmdx.data.synth.model import (
    AFFIRMED_TEMPLATES,
    FILLER_SENTENCES,
    FINDINGS,
    NEGATED_TEMPLATES,
)
from mmdx.data.synth.phi import PHI_CANARIES_FILE, phi_canaries

__all__ = [
    "AFFIRMED_TEMPLATES",
    "FILLER_SENTENCES",
    "FINDINGS",
    "NEGATED_TEMPLATES",
    "PHI_CANARIES_FILE",
    "SynthOptions",
    "phi_canaries",
    "synthesize_cohort",
]
