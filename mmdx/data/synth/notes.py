"""Clinical notes of a synthetic case: filler sentences with affirmed and negated findings planted in them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmdx.data.synth.cases import CasePlan
from mmdx.data.synth.model import (
    AFFIRMED_TEMPLATES,
    FILLER_SENTENCES,
    FINDINGS,
    NEGATED_TEMPLATES,
    NOTE_TYPES,
)
from mmdx.data.synth.phi import phi_identity, phi_sentences
from mmdx.data.text import Note, join_notes


def finding_sentence(template: str, finding: str) -> str:
    return template.format(f=finding, F=finding[0].upper() + finding[1:])


def case_notes(
    plan: CasePlan, rng: np.random.Generator, phi: bool = False
) -> tuple[list[dict], dict[str, str], list[dict]]:
    """Note lines, finding statuses and the planted phrases (with character spans in the joined text).

    With ``phi`` each note also gets sentences naming the patient, the physician, the MRN, a phone number, an
    e-mail, a street address and dates; they draw nothing from ``rng``, so the findings stay the same.
    """
    if not plan.has_text:
        return [], {}, []
    statuses: dict[str, str] = {}
    planted: list[tuple[str, str, str]] = []
    for finding, (_, p1, p0) in FINDINGS.items():
        probs = p1 if plan.label == 1 else p0
        status = ("affirmed", "negated", "absent")[int(rng.choice(3, p=probs))]
        statuses[finding] = status
        if status != "absent":
            templates = AFFIRMED_TEMPLATES if status == "affirmed" else NEGATED_TEMPLATES
            template = templates[int(rng.integers(len(templates)))]
            planted.append((finding, status, finding_sentence(template, finding)))
    n_notes = int(rng.integers(1, 4))
    note_sentences: list[list[str]] = [
        list(rng.choice(FILLER_SENTENCES, size=int(rng.integers(3, 7)), replace=False))
        for _ in range(n_notes)
    ]
    for _, _, sentence in planted:
        target = note_sentences[int(rng.integers(n_notes))]
        target.insert(int(rng.integers(0, len(target) + 1)), sentence)
    times = sorted(rng.choice(np.arange(1, 72), size=n_notes, replace=False))
    notes = []
    lines = []
    if phi:
        identity = phi_identity(plan)
        for j, sentences in enumerate(note_sentences):
            sentences[:0] = phi_sentences(identity, j)
    for j, sentences in enumerate(note_sentences):
        text = " ".join(sentences)
        time = plan.admit + pd.Timedelta(hours=int(times[j]))
        note_type = str(rng.choice(NOTE_TYPES))
        notes.append(Note(text=text, time=time, note_type=note_type, line=j))
        lines.append(
            {
                "case_id": plan.case_id,
                "text": text,
                "note_type": note_type,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    rng.shuffle(lines)  # file order is not time order; mmdx joins by time
    joined = join_notes(notes)
    phrases = []
    for finding, status, sentence in planted:
        start = joined.find(sentence)
        f_start = start + sentence.lower().find(finding)
        phrases.append(
            {
                "finding": finding,
                "status": status,
                "sentence": sentence,
                "span": [start, start + len(sentence)],
                "finding_span": [f_start, f_start + len(finding)],
            }
        )
    return lines, statuses, phrases
