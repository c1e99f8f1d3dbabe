"""pytorch-widedeep with all four of its components: wide, deep tabular, deep text and deep image.

    python -m benchmarks.peers.adapters.widedeep --export E --out O --seed S [--epochs 30 --patience 8]

* wide: ``Wide`` over the categorical columns (sex, site; "missing" is a category);
* deep tabular: ``TabMlp`` (its defaults: MLP 200-100) over categorical embeddings and the continuous
  canonical values, mean-imputed on the training split, with one missing indicator per value;
* deep text: ``TextPreprocessor`` (spaCy tokens, training vocabulary, the same token budget as mmdx's note
  encoder) and ``BasicRNN`` (its defaults: 3-layer LSTM, hidden 64; embeddings of 64);
* deep image: ``Vision`` without pretrained weights (no network here; its default CNN, 64-128-256-512
  channels) on the grey image repeated over three channels. 2D only: a 3D cohort gives it the middle axial
  slice.

Trained with the library's ``Trainer`` (binary objective, its default optimiser), ``n_epochs`` = the mmdx
epoch budget, batch size 32 and its ``EarlyStopping`` callback on the validation loss with mmdx's patience,
restoring the best weights. Runs in the ``widedeep`` environment.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from benchmarks.peers.common import (
    PeerExport,
    PeerModality,
    Split,
    Stopwatch,
    TabularDesign,
    adapter_arguments,
    blank_tabular,
    decode_categories,
    seed_everything,
    write_outputs,
)

TEXT_COLUMN = "text"
BATCH_SIZE = 32


def tabular_frame(export: PeerExport, design: TabularDesign, blank: bool = False) -> pd.DataFrame:
    """Continuous (standardised, imputed), missing indicators and decoded categories of every case."""
    raw = export.tabular()
    if blank:
        raw = blank_tabular(raw, export.continuous_columns)
    values = design.transform(raw)
    names = [*design.columns_, *(f"{c}__missing" for c in design.continuous)]  # type: ignore[misc]
    frame = pd.DataFrame(values, columns=names, index=raw.index)
    frame = frame[[*export.continuous_columns, *(f"{c}__missing" for c in design.continuous)]]
    return pd.concat([frame, decode_categories(raw, export.category_columns)], axis=1)


def main(argv: list[str] | None = None) -> int:
    args = adapter_arguments(__doc__ or "").parse_args(argv)
    import pytorch_widedeep
    import torch
    from pytorch_widedeep import Trainer
    from pytorch_widedeep.callbacks import EarlyStopping
    from pytorch_widedeep.models import BasicRNN, TabMlp, Vision, Wide, WideDeep
    from pytorch_widedeep.preprocessing import TabPreprocessor, TextPreprocessor, WidePreprocessor

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    export = PeerExport(args.export)
    train, val, test = (export.index(s) for s in Split)
    y = export.labels
    raw = export.tabular()
    design = TabularDesign(export.continuous_columns).fit(raw.iloc[train])
    categorical = sorted({c.partition("=")[0] for c in export.category_columns})
    continuous = [*export.continuous_columns, *(f"{c}__missing" for c in export.continuous_columns)]
    texts = pd.DataFrame({TEXT_COLUMN: export.notes()})
    grey = export.image(2)

    def images(index: np.ndarray, blank: bool = False) -> np.ndarray:
        picked = np.zeros_like(grey[index]) if blank else grey[index]
        return np.repeat(picked[..., None], 3, axis=-1).astype(np.float32)  # [n, H, W, 3]

    with Stopwatch() as fit_time:
        table = tabular_frame(export, design)
        wide_prep = WidePreprocessor(wide_cols=categorical)
        tab_prep = TabPreprocessor(
            cat_embed_cols=categorical, continuous_cols=continuous, scale=False, verbose=0
        )
        text_prep = TextPreprocessor(
            text_col=TEXT_COLUMN, maxlen=int(export.manifest["text_max_length"]), n_cpus=1, verbose=0
        )
        x_wide = wide_prep.fit_transform(table.iloc[train])
        x_tab = tab_prep.fit_transform(table.iloc[train])
        x_text = text_prep.fit_transform(texts.iloc[train])

        def inputs(
            index: np.ndarray, frame: pd.DataFrame = table, notes: pd.DataFrame = texts, blank_image=False
        ):
            return {
                "X_wide": wide_prep.transform(frame.iloc[index]),
                "X_tab": tab_prep.transform(frame.iloc[index]),
                "X_text": text_prep.transform(notes.iloc[index]),
                "X_img": images(index, blank_image),
            }

        model = WideDeep(
            wide=Wide(input_dim=int(np.unique(x_wide).max()) + 1, pred_dim=1),
            deeptabular=TabMlp(
                column_idx=tab_prep.column_idx,
                cat_embed_input=tab_prep.cat_embed_input,
                continuous_cols=continuous,
            ),
            deeptext=BasicRNN(vocab_size=len(text_prep.vocab.itos), embed_dim=64),
            deepimage=Vision(),
        )
        trainer = Trainer(
            model,
            objective="binary",
            callbacks=[EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)],
            seed=args.seed,
            verbose=0,
        )
        train_inputs = {"X_wide": x_wide, "X_tab": x_tab, "X_text": x_text, "X_img": images(train)}
        trainer.fit(
            X_train={**train_inputs, "target": y[train]},
            X_val={**inputs(val), "target": y[val]},
            n_epochs=args.epochs,
            batch_size=BATCH_SIZE,
        )
    epochs = len(trainer.history.get("train_loss", [])) or args.epochs
    with Stopwatch() as predict_time:
        probability = trainer.predict_proba(**inputs(test), batch_size=BATCH_SIZE)[:, 1]
    blank_table = tabular_frame(export, design, blank=True)
    empty_notes = pd.DataFrame({TEXT_COLUMN: [""] * len(texts)})
    probabilities = {
        None: probability,
        PeerModality.IMAGE: trainer.predict_proba(**inputs(test, blank_image=True), batch_size=BATCH_SIZE)[
            :, 1
        ],
        PeerModality.TABULAR: trainer.predict_proba(**inputs(test, frame=blank_table), batch_size=BATCH_SIZE)[
            :, 1
        ],
        PeerModality.TEXT: trainer.predict_proba(**inputs(test, notes=empty_notes), batch_size=BATCH_SIZE)[
            :, 1
        ],
    }
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    image_input = "the image" if export.dims == 2 else "the middle axial slice (2D only)"
    write_outputs(
        args.out,
        [export.case_ids[i] for i in test],
        y[test],
        probabilities,
        {
            "inputs": {
                PeerModality.IMAGE.value: f"{image_input}, grey repeated to 3 channels, Vision CNN from scratch",
                PeerModality.TABULAR.value: "Wide on sex/site + TabMlp on imputed values with missing indicators",
                PeerModality.TEXT.value: "joined notes, spaCy tokens, BasicRNN (LSTM)",
            },
            "fit_seconds": fit_time.seconds,
            "predict_seconds_per_case": predict_time.seconds / max(1, len(test)),
            "epochs": epochs,
            "seconds_per_epoch": fit_time.seconds / max(1, epochs),
            "parameters": int(parameters),
            "notes": f"pytorch-widedeep {pytorch_widedeep.__version__}, torch {torch.__version__}; {epochs} epochs",
            "versions": {"pytorch-widedeep": pytorch_widedeep.__version__, "torch": torch.__version__},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
