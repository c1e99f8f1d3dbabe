"""Notes alone: TF-IDF of word unigrams and bigrams with L2-regularised logistic regression.

    python -m benchmarks.peers.adapters.tfidf_text --export E --out O --seed S [--extra-export DIR ...]

The vocabulary is fitted on the training notes (terms in at least 2 notes, sublinear term frequency); the
regularisation strength is chosen by validation AUROC. Cases without notes get the empty text, which is
also what "notes removed" means at test time. ``--extra-export`` also scores every case of further test
cohorts (exported ``--like`` E). Runs in the main environment (scikit-learn).
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.peers.common import (
    PeerExport,
    PeerModality,
    Split,
    Stopwatch,
    adapter_arguments,
    add_extra_export_argument,
    seed_everything,
    write_extra_predictions,
    write_outputs,
)

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def main(argv: list[str] | None = None) -> int:
    parser = adapter_arguments(__doc__ or "")
    add_extra_export_argument(parser)
    args = parser.parse_args(argv)
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    seed_everything(args.seed)
    export = PeerExport(args.export)
    extras = [PeerExport(e) for e in args.extra_export]
    for extra in extras:
        extra.check_scored_like(export)
    train, val, test = (export.index(s) for s in Split)
    y = export.labels
    texts = np.asarray(export.notes(), dtype=object)
    with Stopwatch() as fit_time:
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x_train = vectorizer.fit_transform(texts[train])
        x_val = vectorizer.transform(texts[val])
        best = None
        for c in C_GRID:
            model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=args.seed)
            model.fit(x_train, y[train])
            score = roc_auc_score(y[val], model.predict_proba(x_val)[:, 1])
            if best is None or score > best[0]:
                best = (score, c, model)
    assert best is not None
    val_auroc, c, model = best
    with Stopwatch() as predict_time:
        probability = model.predict_proba(vectorizer.transform(texts[test]))[:, 1]
    empty = model.predict_proba(vectorizer.transform([""] * len(test)))[:, 1]
    for extra in extras:
        rows = extra.index(Split.TEST)
        notes = np.asarray(extra.notes(), dtype=object)[rows]
        scored = model.predict_proba(vectorizer.transform(notes))[:, 1]
        without = model.predict_proba(vectorizer.transform([""] * len(rows)))[:, 1]
        write_extra_predictions(args.out, extra, rows, {None: scored, PeerModality.TEXT: without})
    write_outputs(
        args.out,
        [export.case_ids[i] for i in test],
        y[test],
        {None: probability, PeerModality.TEXT: empty},
        {
            "inputs": {PeerModality.TEXT.value: "joined notes as TF-IDF of word 1-2-grams"},
            "fit_seconds": fit_time.seconds,
            "predict_seconds_per_case": predict_time.seconds / max(1, len(test)),
            "epochs": None,
            "seconds_per_epoch": None,
            "parameters": int(model.coef_.size + model.intercept_.size),
            "val_auroc": float(val_auroc),
            "notes": f"scikit-learn {sklearn.__version__}: {len(vectorizer.vocabulary_)} terms, C={c} (chosen on val)",
            "versions": {"scikit-learn": sklearn.__version__},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
