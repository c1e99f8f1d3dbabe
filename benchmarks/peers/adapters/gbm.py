"""Gradient boosting (LightGBM): the HAIM recipe, or tabular values alone.

    python -m benchmarks.peers.adapters.gbm --export E --out O --seed S --features haim|tabular
        [--extra-export DIR ...]

``haim`` follows Soenksen et al., "Integrated multimodal artificial intelligence framework for healthcare
applications", npj Digital Medicine 5, 149 (2022): fixed per-modality embeddings concatenated into one
vector for gradient-boosted trees. Here the embeddings are the canonical tabular values (catalogue units,
missing left missing: the trees route them), the image's intensity and shape statistics (no pretrained
image network is available offline) and the all-MiniLM-L6-v2 embedding of the joined notes. ``tabular``
uses the tabular values only (the single-modality baseline).

The tree count is chosen by early stopping on the validation split (log loss, 50 rounds) and the leaves and
learning rate by validation AUROC over a small grid; row and column subsampling make the seed matter.
``--extra-export`` also scores every case of further test cohorts (exported ``--like`` E) with the same
model, intact and with each modality removed. Runs in the ``haim`` environment (LightGBM, numpy, pandas).
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
    blank_tabular,
    seed_everything,
    write_extra_predictions,
    write_outputs,
)

GRID = [(num_leaves, rate) for num_leaves in (7, 15, 31) for rate in (0.03, 0.1)]
MAX_TREES = 2000
EARLY_STOPPING_ROUNDS = 50


def design(export: PeerExport, features: str, removed: PeerModality | None = None) -> np.ndarray:
    """The feature matrix ``[N, F]`` of every case, with ``removed`` made missing for all of them."""
    tabular = export.tabular()
    if removed is PeerModality.TABULAR:
        tabular = blank_tabular(tabular, export.continuous_columns)
    blocks = [tabular.to_numpy(dtype=float)]
    if features == "haim":
        stats, blank_stats, _ = export.image_stats()
        embeddings, empty = export.minilm()
        if removed is PeerModality.IMAGE:
            stats = np.broadcast_to(blank_stats, stats.shape)
        if removed is PeerModality.TEXT:
            embeddings = np.broadcast_to(empty, embeddings.shape)
        blocks += [stats, embeddings]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def modalities_of(features: str) -> list[PeerModality]:
    if features == "haim":
        return [PeerModality.IMAGE, PeerModality.TABULAR, PeerModality.TEXT]
    return [PeerModality.TABULAR]


def removed_probabilities(
    model, export: PeerExport, features: str, rows: np.ndarray
) -> dict[PeerModality, np.ndarray]:
    """The model's probabilities on ``rows`` of ``export`` with each modality it uses removed."""
    return {
        modality: model.predict_proba(design(export, features, modality)[rows])[:, 1]
        for modality in modalities_of(features)
    }


def main(argv: list[str] | None = None) -> int:
    parser = adapter_arguments(__doc__ or "")
    parser.add_argument("--features", choices=["haim", "tabular"], default="haim")
    add_extra_export_argument(parser)
    args = parser.parse_args(argv)
    import lightgbm
    from sklearn.metrics import roc_auc_score

    seed_everything(args.seed)
    export = PeerExport(args.export)
    extras = [PeerExport(e) for e in args.extra_export]
    for extra in extras:
        extra.check_scored_like(export)
    train, val, test = (export.index(s) for s in Split)
    y = export.labels
    x = design(export, args.features)
    threads = args.threads or None
    best = None
    with Stopwatch() as fit_time:
        for num_leaves, rate in GRID:
            model = lightgbm.LGBMClassifier(
                n_estimators=MAX_TREES,
                learning_rate=rate,
                num_leaves=num_leaves,
                min_child_samples=10,
                subsample=0.8,
                subsample_freq=1,
                colsample_bytree=0.8,
                reg_lambda=1.0,
                random_state=args.seed,
                n_jobs=threads,
                verbose=-1,
            )
            model.fit(
                x[train],
                y[train],
                eval_X=(x[val],),
                eval_y=(y[val],),
                eval_metric="binary_logloss",
                callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
            )
            score = roc_auc_score(y[val], model.predict_proba(x[val])[:, 1])
            print(f"leaves {num_leaves} rate {rate}: {model.best_iteration_} trees, val AUROC {score:.4f}")
            if best is None or score > best[0]:
                best = (score, num_leaves, rate, model)
    assert best is not None
    val_auroc, num_leaves, rate, model = best
    with Stopwatch() as predict_time:
        probabilities = {None: model.predict_proba(x[test])[:, 1]}
    probabilities.update(removed_probabilities(model, export, args.features, test))
    for extra in extras:
        rows = extra.index(Split.TEST)
        scored = {None: model.predict_proba(design(extra, args.features)[rows])[:, 1]}
        scored.update(removed_probabilities(model, extra, args.features, rows))
        print(f"scored {len(rows)} cases of {extra.directory}")
        write_extra_predictions(args.out, extra, rows, scored)
    n_trees = int(model.best_iteration_ or model.n_estimators)
    dims = "volume" if export.dims == 3 else "image"
    inputs = {PeerModality.TABULAR.value: "canonical values, NaN left to the trees; sex and site one-hot"}
    if args.features == "haim":
        inputs[PeerModality.IMAGE.value] = (
            f"{len(export.manifest['image_stats'])} intensity/shape statistics of the {dims}"
        )
        inputs[PeerModality.TEXT.value] = "all-MiniLM-L6-v2 embedding (384) of the joined notes"
    write_outputs(
        args.out,
        [export.case_ids[i] for i in test],
        y[test],
        probabilities,
        {
            "inputs": inputs,
            "fit_seconds": fit_time.seconds,
            "predict_seconds_per_case": predict_time.seconds / max(1, len(test)),
            "epochs": None,
            "seconds_per_epoch": None,
            "parameters": None,
            "val_auroc": float(val_auroc),
            "notes": f"LightGBM {lightgbm.__version__}: {n_trees} trees of {num_leaves} leaves, learning rate {rate} (chosen on val)",
            "versions": {"lightgbm": lightgbm.__version__, "numpy": np.__version__},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
