"""Name scrubbing: recall and precision of the note scrubber on labelled person names in synthetic notes.

The names come from Faker, in locales whose names the scrubber has never seen (it has no name list of its
own: in ``mmdx deid`` it knows only the cohort's names, from the cases table and DICOM headers). Each note
mixes clinical sentences of the synthetic generator, distractors that put capitalised clinical words where
names usually stand ("Mother: Rheumatoid arthritis", "Referred by Emergency Department"), and sentences
holding one labelled name:

* *cued* names (another person: a relative, a clinician, a contact) beside a relationship or role word, a
  title or a label, written by templates of the kinds clinical notes use;
* the *patient's own* name, anywhere in the text, which ``mmdx deid`` passes to the scrubber from the cases
  table (as here, through ``PatientIdentity``);
* *uncued* names of other people, with neither a cue nor a list pointing to them ("Letter copied to Anna
  Nowak."): scored apart, since the scrubber is not built to find them, and left out of the headline.

A name counts as caught when none of its words survives in the scrubbed sentence. Precision is per word:
of the words replaced by ``[NAME]`` (found by aligning the scrubbed words with the original ones), the
share that belong to a labelled name. 95% intervals: percentile bootstrap over notes (2,000 resamples).

    .venv/bin/python benchmarks/name_scrubbing.py --notes 150 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import re
from dataclasses import dataclass, field

import numpy as np

from mmdx.data.synth import AFFIRMED_TEMPLATES, FILLER_SENTENCES, FINDINGS, NEGATED_TEMPLATES
from mmdx.deid.text import NoteScrubber, PatientIdentity

#: Latin-script locales; the scrubber decides by capitalisation, which scripts without case do not have.
LOCALES = (
    "de_DE", "fr_FR", "es_ES", "it_IT", "pl_PL", "nl_NL", "sv_SE", "pt_BR", "cs_CZ", "hu_HU", "tr_TR",
    "fi_FI", "da_DK", "no_NO", "ro_RO", "hr_HR", "sk_SK", "lt_LT", "en_IE", "en_NZ",
)  # fmt: skip

RELATIONS = (
    "wife",
    "husband",
    "daughter",
    "son",
    "mother",
    "father",
    "sister",
    "brother",
    "partner",
    "friend",
)
#: templates holding one other person's name ({name}) or surname ({last})
CUED = (
    "{Rel}: {name}.",
    "Accompanied by his {rel}, {name}.",
    "Accompanied by her {rel} {name}, who gives the history.",
    "Next of kin: {name} ({rel}).",
    "{name} ({rel}) phoned the ward this morning.",
    "Spoke with the patient's {rel} {name} by phone.",
    "Seen by {name}, physiotherapist.",
    "Discussed with consultant {name}.",
    "Referred by {name} for imaging.",
    "Reviewed by Dr {last} on the ward round.",
    "Emergency contact: {name}, neighbour.",
    "GP: Dr {last}.",
    "Mrs {last} attended with the patient.",
    "Dictated by {name}.",
    "Her {rel}, {name}, is the main carer.",
    "Name of carer: {name}.",
)
#: templates holding the patient's own name ({first} or {name})
OWN = (
    "{first} reports less cough today.",
    "Plan discussed with {first}, who agrees.",
    "{name} was reviewed in clinic.",
    "Told {first} to return if the fever persists.",
)
#: another person's name with no cue at all
UNCUED = ("{name} visited yesterday.", "Letter copied to {name}.", "{name} will bring the medication list.")
#: capitalised clinical and organisational words where a name would stand: none of them is a person
DISTRACTORS = (
    "{Rel}: Type 2 diabetes.",
    "{Rel}: Rheumatoid arthritis.",
    "{Rel}: Prostate cancer at 70.",
    "{Rel}: Ischaemic heart disease.",
    "{Rel}: Alive and well.",
    "{Rel}: Died aged 81 of Stroke.",
    "{Rel} - Hypertension, on amlodipine.",
    "{Rel}: Coeliac disease.",
    "{Rel}: Multiple sclerosis.",
    "{Rel}: Huntington disease, genetic testing declined.",
    "Referred by Emergency Department.",
    "Seen by Physiotherapy before discharge.",
    "Discussed with Radiology.",
    "Contact: Ward 12 nursing station.",
    "GP: Riverside Medical Practice.",
    "Lives with his {rel}. Independent with activities of daily living.",
    "{Rel}: Crohn's disease.",
    "{Rel}: Graves' disease.",
    "{Rel}: Down syndrome.",
    "{Rel}: Hodgkin lymphoma.",
    "{Rel}: Bell's palsy.",
    "Seen by Occupational Therapy.",
    "Referred by Orthopaedics for review.",
    "Discussed with Microbiology.",
    "Discussed with Infection Control.",
    "Seen by Speech and Language Therapy.",
    "GP: Castle Street Surgery.",
    "Contact: Macmillan nurse.",
)


@dataclass
class Sentence:
    text: str
    names: list[str] = field(default_factory=list)  # the labelled names it holds (whole names)
    kind: str = "clinical"  # "cued", "own", "uncued" or "clinical" (no name)


@dataclass
class Note:
    sentences: list[Sentence]
    patient: PatientIdentity


def _clinical(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(FILLER_SENTENCES)
    finding = rng.choice(sorted(FINDINGS))
    template = rng.choice(AFFIRMED_TEMPLATES + NEGATED_TEMPLATES)
    return template.format(f=finding, F=finding.capitalize())


def make_notes(n_notes: int, seed: int) -> list[Note]:
    from faker import Faker

    rng = random.Random(seed)
    fakers = {locale: Faker(locale) for locale in LOCALES}
    for i, faker in enumerate(fakers.values()):
        faker.seed_instance(seed * 1000 + i)
    notes = []
    for _ in range(n_notes):
        faker = fakers[rng.choice(LOCALES)]
        first, last = faker.first_name(), faker.last_name()
        patient = PatientIdentity(names=frozenset(w.lower() for w in f"{first} {last}".split()))
        sentences: list[Sentence] = []
        for _ in range(rng.randint(2, 4)):
            sentences.append(Sentence(_clinical(rng)))
        for _ in range(rng.randint(1, 3)):
            other = fakers[rng.choice(LOCALES)]
            name, surname = f"{other.first_name()} {other.last_name()}", other.last_name()
            rel = rng.choice(RELATIONS)
            template = rng.choice(CUED)
            whole = surname if "{last}" in template else name
            text = template.format(name=name, last=surname, rel=rel, Rel=rel.capitalize())
            sentences.append(Sentence(text, [whole], "cued"))
        if rng.random() < 0.6:
            template = rng.choice(OWN)
            sentences.append(Sentence(template.format(first=first, name=f"{first} {last}"), [
                first if "{first}" in template else f"{first} {last}"
            ], "own"))  # fmt: skip
        if rng.random() < 0.3:
            other = fakers[rng.choice(LOCALES)]
            name = f"{other.first_name()} {other.last_name()}"
            sentences.append(Sentence(rng.choice(UNCUED).format(name=name), [name], "uncued"))
        for _ in range(rng.randint(1, 2)):
            rel = rng.choice(RELATIONS)
            sentences.append(Sentence(rng.choice(DISTRACTORS).format(rel=rel, Rel=rel.capitalize())))
        rng.shuffle(sentences)
        notes.append(Note(sentences, patient))
    return notes


_WORD = re.compile(r"\[NAME\]|[^\W_][\w'’.-]*[^\W_.]|[^\W_]", re.UNICODE)


def _flagged_words(original: str, scrubbed: str) -> list[str]:
    """The words of ``original`` that the scrubber replaced with [NAME]."""
    before, after = _WORD.findall(original), _WORD.findall(scrubbed)
    flagged = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag in ("replace", "delete") and "[NAME]" in after[j1:j2]:
            flagged.extend(before[i1:i2])
    return flagged


def score(notes: list[Note]) -> dict:
    """Recall of cued and own names (the headline), of uncued names apart, and word precision."""
    scrubber = NoteScrubber()
    per_note = []  # (names, caught, flagged words, flagged name words, uncued names, uncued caught)
    misses, false_hits = [], []
    for note in notes:
        row = [0, 0, 0, 0, 0, 0]
        for sentence in note.sentences:
            scrubbed = scrubber.scrub(sentence.text, note.patient).text
            name_words = {w.strip(".,") for name in sentence.names for w in name.split()}
            for name in sentence.names:
                left = [w for w in name.split() if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", scrubbed)]
                column = 4 if sentence.kind == "uncued" else 0
                row[column] += 1
                row[column + 1] += not left
                if left and sentence.kind != "uncued":
                    misses.append(sentence.text)
            words = _flagged_words(sentence.text, scrubbed)
            row[2] += len(words)
            row[3] += sum(w.strip(".,") in name_words for w in words)
            if any(w.strip(".,") not in name_words for w in words):
                false_hits.append(f"{sentence.text} -> {scrubbed}")
        per_note.append(row)
    table = np.array(per_note, dtype=float)
    rng = np.random.default_rng(0)
    boot = table[rng.integers(0, len(table), size=(2000, len(table)))].sum(axis=1)
    totals = table.sum(axis=0)

    def interval(numerator: int, denominator: int) -> list[float]:
        ratio = boot[:, numerator] / boot[:, denominator]
        return [float(np.percentile(ratio, 2.5)), float(np.percentile(ratio, 97.5))]

    return {
        "notes": len(notes),
        "names": int(totals[0]),
        "names_caught": int(totals[1]),
        "recall": totals[1] / totals[0],
        "recall_95ci": interval(1, 0),
        "words_flagged": int(totals[2]),
        "name_words_flagged": int(totals[3]),
        "precision": totals[3] / totals[2],
        "precision_95ci": interval(3, 2),
        "uncued_names": int(totals[4]),
        "uncued_caught": int(totals[5]),
        "uncued_recall": totals[5] / totals[4] if totals[4] else None,
        "missed_examples": misses[:10],
        "false_positive_examples": sorted(set(false_hits))[:10],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notes", type=int, default=150, help="notes per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    per_seed = {seed: make_notes(args.notes, seed) for seed in args.seeds}
    result = {
        "seeds": args.seeds,
        "locales": list(LOCALES),
        "pooled": score([note for notes in per_seed.values() for note in notes]),
        "per_seed": {
            str(seed): {k: v for k, v in score(notes).items() if not k.endswith("examples")}
            for seed, notes in per_seed.items()
        },
    }
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
