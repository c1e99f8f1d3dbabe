"""fusilli's tabular + image fusion models.

    python -m benchmarks.peers.adapters.fusilli_fusion --export E --out O --seed S --model NAME

fusilli (Townend et al., JOSS 2024) fuses one tabular modality with one image (2D or 3D) -- it has no text
modality, so the notes enter as their all-MiniLM-L6-v2 embedding appended to the tabular vector (the
canonical values, mean-imputed on the training split and standardised, with missing indicators). 3D
cohorts give it the volume.

The model classes run unchanged inside fusilli's own Lightning module (``BaseModel``: Adam, learning rate
1e-3, binary cross-entropy) and trainer factory (``init_trainer``: early stopping on the validation loss,
patience 15, last weights kept), with fusilli's default batch size 8 and ``max_epochs`` = the mmdx epoch
budget. One change is unavoidable: fusilli's default image branch has five conv(3)-pool(2) blocks, which
need at least 94 pixels per side; for smaller images both branches keep the first blocks that fit (3 for
32 pixels), set through fusilli's documented ``layer_mods`` mechanism. Runs in the ``fusilli`` environment.

``CrossmodalMultiheadAttention`` passes ``[batch, features]`` tensors to ``nn.MultiheadAttention``, which
reads them as one unbatched sequence: it attends across the cases of a batch, so a test case's prediction
depends on the cases predicted with it (here: the test split in its export order, ``PREDICT_BATCH`` at a
time). It is run as fusilli ships it.
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.peers.common import (
    PeerExport,
    PeerModality,
    Split,
    Stopwatch,
    TabularDesign,
    adapter_arguments,
    blank_tabular,
    seed_everything,
    write_outputs,
)

#: the image + tabular fusions compared (module, class); attention-based first
MODELS = {
    "CrossmodalMultiheadAttention": "fusilli.fusionmodels.tabularimagefusion.crossmodal_att",
    "ImageChannelWiseMultiAttention": "fusilli.fusionmodels.tabularimagefusion.channelwise_att",
    "ConcatImageMapsTabularMaps": "fusilli.fusionmodels.tabularimagefusion.concat_img_maps_tabular_maps",
}
BATCH_SIZE = 8  # fusilli's default (prepare_fusion_data)
PREDICT_BATCH = 64


def blocks_that_fit(size: int, max_blocks: int = 5) -> int:
    """How many conv(3, no padding) + max-pool(2) blocks an image side of ``size`` pixels survives."""
    blocks = 0
    while blocks < max_blocks and size - 2 >= 2:
        size = (size - 2) // 2
        blocks += 1
    return blocks


def main(argv: list[str] | None = None) -> int:
    parser = adapter_arguments(__doc__ or "")
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    args = parser.parse_args(argv)
    import importlib

    import fusilli
    import lightning
    import torch
    from fusilli.fusionmodels.base_model import BaseModel
    from fusilli.utils.model_modifier import modify_model_architecture
    from fusilli.utils.training_utils import init_trainer
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    lightning.seed_everything(args.seed, workers=True, verbose=False)
    export = PeerExport(args.export)
    train, val, test = (export.index(s) for s in Split)
    y = export.labels.astype(np.float32)
    raw = export.tabular()
    design = TabularDesign(export.continuous_columns).fit(raw.iloc[train])
    embeddings, empty = export.minilm()
    volume = export.image(export.dims)  # [N, H, W] or [N, D, H, W]

    def tab(removed: PeerModality | None = None) -> np.ndarray:
        frame = blank_tabular(raw, export.continuous_columns) if removed is PeerModality.TABULAR else raw
        notes = np.broadcast_to(empty, embeddings.shape) if removed is PeerModality.TEXT else embeddings
        return np.concatenate([design.transform(frame), notes], axis=1).astype(np.float32)

    def img(removed: PeerModality | None = None) -> np.ndarray:
        return np.zeros_like(volume) if removed is PeerModality.IMAGE else volume

    def channel_first(images: np.ndarray):
        # unsqueeze gives the channel axis PyTorch's standard stride; numpy's [:, None] gives it one that
        # makes the convolutions return channels-last tensors, which fusilli's .view() cannot flatten
        return torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)

    fusion_class = getattr(importlib.import_module(MODELS[args.model]), args.model)
    x_tab, x_img = tab(), img()
    data_dims = {
        "mod1_dim": x_tab.shape[1],
        "mod2_dim": None,
        "mod3_dim": None,
        "img_dim": list(volume.shape[1:]),
    }
    with Stopwatch() as fit_time:
        fusion = fusion_class(prediction_task="binary", data_dims=data_dims, multiclass_dimensions=None)
        keep = blocks_that_fit(min(volume.shape[1:]))
        if keep < len(fusion.img_layers):
            names = list(fusion.img_layers)[:keep]
            modify_model_architecture(
                fusion,
                {
                    args.model: {
                        "mod1_layers": nn.ModuleDict({k: fusion.mod1_layers[k] for k in names}),
                        "img_layers": nn.ModuleDict({k: fusion.img_layers[k] for k in names}),
                    }
                },
            )
        module = BaseModel(fusion)

        def loader(index: np.ndarray, shuffle: bool) -> DataLoader:
            data = TensorDataset(
                torch.from_numpy(x_tab[index]), channel_first(x_img[index]), torch.from_numpy(y[index])
            )
            return DataLoader(data, batch_size=BATCH_SIZE, shuffle=shuffle)

        trainer = init_trainer(
            None,
            output_paths={},
            max_epochs=args.epochs,
            enable_checkpointing=False,
            checkpoint_filename=None,
        )
        trainer.fit(module, train_dataloaders=loader(train, True), val_dataloaders=loader(val, False))
    epochs = int(trainer.current_epoch)
    fusion.eval()

    def predict(removed: PeerModality | None = None) -> np.ndarray:
        t, i = torch.from_numpy(tab(removed)[test]), channel_first(img(removed)[test])
        out = []
        with torch.no_grad():
            for start in range(0, len(test), PREDICT_BATCH):
                logits = fusion(t[start : start + PREDICT_BATCH], i[start : start + PREDICT_BATCH])
                logits = logits[0] if isinstance(logits, list | tuple) else logits
                out.append(torch.sigmoid(logits.reshape(-1)).numpy())
        return np.concatenate(out)

    with Stopwatch() as predict_time:
        probability = predict()
    probabilities = {None: probability, **{m: predict(m) for m in PeerModality}}
    parameters = sum(p.numel() for p in fusion.parameters() if p.requires_grad)
    image_input = "the image" if export.dims == 2 else "the volume (3D convolutions)"
    write_outputs(
        args.out,
        [export.case_ids[i] for i in test],
        y[test],
        probabilities,
        {
            "inputs": {
                PeerModality.IMAGE.value: image_input,
                PeerModality.TABULAR.value: "imputed, standardised values with missing indicators (tabular1)",
                PeerModality.TEXT.value: "no text modality: MiniLM note embedding (384) appended to tabular1",
            },
            "fit_seconds": fit_time.seconds,
            "predict_seconds_per_case": predict_time.seconds / max(1, len(test)),
            "epochs": epochs,
            "seconds_per_epoch": fit_time.seconds / max(1, epochs),
            "parameters": int(parameters),
            "notes": (
                f"fusilli {fusilli.__version__} {args.model}, {keep} of 5 default blocks per branch, "
                f"batch {BATCH_SIZE}, {epochs} epochs (early stopping on val loss, patience 15)"
            ),
            "versions": {
                "fusilli": fusilli.__version__,
                "torch": torch.__version__,
                "lightning": lightning.__version__,
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
