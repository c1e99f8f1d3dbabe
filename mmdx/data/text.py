"""Clinical notes: parsing ``notes.jsonl``, joining a case's notes in time order, and tokenisation.

The cohort tokenizer is a BPE model trained with the ``tokenizers`` library on the training split's
notes only; pretrained text encoders bring their own ``tokenizer.json``. Both are saved in the model bundle
and both give character offsets, so that token attributions map back to spans of the original note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

from mmdx.data.issues import Issue, IssueCode, Severity
from mmdx.data.json_limits import JsonLimitExceeded, parse_json_line
from mmdx.data.schemas import schema_errors

NOTE_SEPARATOR = "\n\n"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


@dataclass(frozen=True)
class Note:
    text: str
    time: pd.Timestamp | None
    note_type: str | None
    line: int


@dataclass
class ParsedNotes:
    """Notes per case plus the issues of lines that were not used."""

    by_case: dict[str, list[Note]] = field(default_factory=dict)
    case_issues: dict[str, list[Issue]] = field(default_factory=dict)
    unattached: list[Issue] = field(default_factory=list)
    n_lines: int = 0

    def joined(self, case_id: str) -> str | None:
        """The case's notes joined in time order (notes without a time first, in file order), or None."""
        notes = self.by_case.get(case_id)
        if not notes:
            return None
        return join_notes(notes)


def join_notes(notes: list[Note]) -> str:
    def key(note: Note) -> tuple:
        return (note.time is not None, note.time or pd.Timestamp(0, tz="UTC"), note.line)

    return NOTE_SEPARATOR.join(n.text.strip() for n in sorted(notes, key=key))


def note_case_id(document: object) -> str | None:
    """The ``case_id`` of a parsed notes line as text: a string as written, an integer (``pandas``' JSON
    export of a numeric id column writes ``"case_id": 3``) as its digits; ``None`` for anything else."""
    case_id = document.get("case_id") if isinstance(document, dict) else None
    if isinstance(case_id, int) and not isinstance(case_id, bool):
        return str(case_id)
    return case_id if isinstance(case_id, str) else None


def parse_notes(lines: list[tuple[int, str]], known_case_ids: set[str], file: str) -> ParsedNotes:
    """Parse raw ``notes.jsonl`` lines; every line that cannot be used gets an issue naming its line number."""
    parsed = ParsedNotes(n_lines=len(lines))
    for number, raw in lines:
        try:
            doc = parse_json_line(raw)
        except JsonLimitExceeded as exc:
            parsed.unattached.append(
                Issue(
                    IssueCode.NOTE_LIMIT_EXCEEDED,
                    f"line {number}: {exc} (the limits are in mmdx.data.json_limits); not parsed",
                    file,
                    row=number,
                )
            )
            continue
        except json.JSONDecodeError as exc:
            parsed.unattached.append(
                Issue(
                    IssueCode.NOTE_MALFORMED, f"line {number}: not valid JSON ({exc.msg})", file, row=number
                )
            )
            continue
        case_id = note_case_id(doc)
        if case_id is not None:
            doc["case_id"] = case_id
        errors = schema_errors("note", doc)
        if errors:
            issue = Issue(IssueCode.NOTE_MALFORMED, f"line {number}: " + "; ".join(errors), file, row=number)
            if case_id in known_case_ids:
                parsed.case_issues.setdefault(case_id, []).append(issue)
            else:
                parsed.unattached.append(issue)
            continue
        if case_id not in known_case_ids:
            parsed.unattached.append(
                Issue(
                    IssueCode.UNKNOWN_CASE_ID,
                    f"line {number}: case_id {case_id!r} is not in the cases table; note ignored",
                    file,
                    row=number,
                )
            )
            continue
        text = doc["text"]
        if not text.strip():
            parsed.case_issues.setdefault(case_id, []).append(
                Issue(IssueCode.NOTE_EMPTY, f"line {number}: empty note", file, Severity.WARNING, row=number)
            )
            continue
        time = None
        if doc.get("time"):
            try:
                time = pd.Timestamp(doc["time"])
            except (ValueError, TypeError):
                parsed.case_issues.setdefault(case_id, []).append(
                    Issue(
                        IssueCode.TIME_INVALID,
                        f"line {number}: time {doc['time']!r} is not ISO 8601; the note is kept without a time",
                        file,
                        Severity.WARNING,
                        row=number,
                    )
                )
            if time is not None and time.tzinfo is None:
                time = time.tz_localize("UTC")
        parsed.by_case.setdefault(case_id, []).append(Note(text, time, doc.get("note_type"), number))
    return parsed


def train_note_tokenizer(texts: list[str], vocab_size: int = 4000, min_frequency: int = 2) -> Tokenizer:
    """Train a lower-casing BPE tokenizer on ``texts`` (the training split's notes).

    BPE is trained without a continuing-subword prefix on purpose: the library's trainer numbers prefixed
    pieces in hash-map order, which makes WordPiece vocabularies differ from run to run; without the prefix
    every piece comes from the sorted alphabet, so the same notes always give the same vocabulary -- and the
    same seed the same model.
    """
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(texts or [""], trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return tokenizer


def pad_id(tokenizer: Tokenizer) -> int:
    """The id of the padding token (``[PAD]`` or ``<pad>``), 0 if the vocabulary has neither."""
    for token in ("[PAD]", "<pad>"):
        idx = tokenizer.token_to_id(token)
        if idx is not None:
            return idx
    return 0


@dataclass
class EncodedNotes:
    """Token ids ``[N, T]``, attention mask ``[N, T]`` and character offsets ``[N, T, 2]`` (into each text)."""

    ids: np.ndarray
    mask: np.ndarray
    offsets: np.ndarray
    tokens: list[list[str]]


def encode_notes(
    tokenizer: Tokenizer, texts: list[str], max_length: int, negation: bool = False
) -> EncodedNotes:
    """Tokenise, truncate to ``max_length`` and pad. Empty texts give a row with only special tokens.

    ``negation``: a token inside a negation's scope (:func:`~mmdx.data.note_spans.negated_positions`, after
    NegEx) gets the id ``vocabulary size + its id``, so that an encoder built with ``negation=True`` reads
    "consolidation" in "no evidence of consolidation" as another input than in "there is consolidation".
    ``tokens`` and ``offsets`` are those of the text either way.
    """
    tok = Tokenizer.from_str(tokenizer.to_str())
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(
        length=max_length, pad_id=pad_id(tokenizer), pad_token=tokenizer.id_to_token(pad_id(tokenizer))
    )
    encodings = tok.encode_batch(texts) if texts else []
    n = len(texts)
    ids = np.zeros((n, max_length), dtype=np.int64)
    mask = np.zeros((n, max_length), dtype=np.int64)
    offsets = np.zeros((n, max_length, 2), dtype=np.int64)
    tokens = []
    for i, enc in enumerate(encodings):
        ids[i] = enc.ids
        mask[i] = enc.attention_mask
        offsets[i] = enc.offsets
        tokens.append(list(enc.tokens))
    if negation:
        from mmdx.data.note_spans import negated_positions

        vocabulary = tokenizer.get_vocab_size()
        for i, text in enumerate(texts):
            ids[i] += vocabulary * negated_positions(text, offsets[i], mask[i])
    return EncodedNotes(ids=ids, mask=mask, offsets=offsets, tokens=tokens)
