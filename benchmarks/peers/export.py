"""Write the peer-neutral export of a cohort (format: ``benchmarks/peers/common.py``).

    .venv/bin/python -m benchmarks.peers.export COHORT OUT [--config configs/demo.yaml]

Every peer reads this export, so all of them see the same validated cases, the same splits (the cohort's
``split`` column as mmdx validation resolves it) and the images preprocessed exactly as mmdx preprocesses
them for the given config (orientation, spacing, window to [0, 1], pad/crop), read through mmdx's image
cache. The export is reused while the cohort's files, the image and tabular settings and the export schema
are unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from benchmarks.peers.common import EXPORT_SCHEMA, ExportFile, PeerExport, PeerModality, Split
from mmdx.config import Config, load_config
from mmdx.data.dataset import ImageCache
from mmdx.data.plan import ImagePlan, declared_modality, plan_cohort_images
from mmdx.data.tabular import aggregate_latest
from mmdx.data.validation import ValidatedCohort, validate_cohort
from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES

REPO = Path(__file__).resolve().parents[2]
#: the config whose image and tabular settings the export follows, by image dimensionality
DEFAULT_CONFIGS = {2: REPO / "configs" / "demo.yaml", 3: REPO / "configs" / "ct3d.yaml"}
#: MiniLM reads at most this many tokens per note (the sentence-transformers setting of all-MiniLM-L6-v2)
MINILM_MAX_TOKENS = 256

# ---------------------------------------------------------------------------------------------------------
# image statistics (the HAIM recipe's image features when no pretrained image network is available)

#: thresholds on the [0, 1] window scale; with the default window (-1000, 400) HU they are about
#: -510 HU (aerated lung vs. denser), -300 HU and -90 HU (consolidation and soft tissue)
STAT_THRESHOLDS = (0.35, 0.5, 0.65)
STAT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
STAT_BINS = 12
#: dense regions: voxels above this threshold, grouped into connected components
DENSE_THRESHOLD = 0.65


def image_stat_names() -> list[str]:
    names = ["mean", "std", "skewness", "excess_kurtosis"]
    names += [f"q{round(100 * q):02d}" for q in STAT_QUANTILES]
    names += [f"hist_{i:02d}" for i in range(STAT_BINS)]
    names += [f"above_{t:.2f}" for t in STAT_THRESHOLDS]
    names += ["gradient_mean", "gradient_std"]
    names += ["dense_components", "dense_largest_share", "dense_second_share", "dense_largest_offset"]
    return names


def image_statistics(image: np.ndarray) -> np.ndarray:
    """Intensity and shape statistics of one image ``[H, W]`` or ``[D, H, W]`` in [0, 1].

    Moments and quantiles of the intensities, a 12-bin histogram (fractions), the fraction above each of
    ``STAT_THRESHOLDS``, the mean and standard deviation of the gradient magnitude (texture), and the dense
    components (above ``DENSE_THRESHOLD``, face-connected): how many, the shares of all pixels in the
    largest and second largest, and the distance of the largest one's centroid from the image centre as a
    fraction of the half-diagonal (0 when there is none). Returns ``[len(image_stat_names())]`` float32.
    """
    x = np.asarray(image, dtype=np.float64)
    values = x.ravel()
    mean = values.mean()
    std = values.std()
    centred = values - mean
    skewness = float((centred**3).mean() / std**3) if std > 1e-12 else 0.0
    kurtosis = float((centred**4).mean() / std**4 - 3.0) if std > 1e-12 else 0.0
    quantiles = np.quantile(values, STAT_QUANTILES)
    histogram = np.histogram(np.clip(values, 0.0, 1.0), bins=STAT_BINS, range=(0.0, 1.0))[0] / values.size
    above = [float((values > t).mean()) for t in STAT_THRESHOLDS]
    gradient = np.sqrt(sum(g**2 for g in np.gradient(x)))
    labels, count = ndimage.label(x > DENSE_THRESHOLD)
    largest = second = offset = 0.0
    if count:
        sizes = np.bincount(labels.ravel())[1:]
        order = np.argsort(sizes)[::-1]
        largest = sizes[order[0]] / values.size
        second = sizes[order[1]] / values.size if count > 1 else 0.0
        centroid = np.array(ndimage.center_of_mass(labels == order[0] + 1))
        centre = (np.array(x.shape) - 1) / 2.0
        offset = float(np.linalg.norm(centroid - centre) / max(np.linalg.norm(centre), 1e-12))
    row = [mean, std, skewness, kurtosis, *quantiles, *histogram, *above, gradient.mean(), gradient.std()]
    row += [float(count), largest, second, offset]
    return np.asarray(row, dtype=np.float32)


def middle_axial_slice(volume: np.ndarray) -> np.ndarray:
    """The middle axial slice ``[I, J]`` of a RAS-ordered volume ``[I, J, K]`` (K runs inferior to superior)."""
    return volume[:, :, volume.shape[2] // 2]


# ---------------------------------------------------------------------------------------------------------
# notes


def minilm_embeddings(texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``([N, 384], [384])``: L2-normalised mean-pooled all-MiniLM-L6-v2 embeddings of ``texts`` and of "".

    The packaged model is used through mmdx's encoder and tokenizer (no network).
    """
    import torch
    from tokenizers import Tokenizer

    from mmdx.data.text import encode_notes
    from mmdx.models.encoders.text import minilm_encoder, minilm_tokenizer

    encoder = minilm_encoder(freeze=True).eval()
    tokenizer = Tokenizer.from_file(str(minilm_tokenizer()))
    everything = [*texts, ""]
    out = []
    with torch.no_grad():
        for start in range(0, len(everything), batch_size):
            encoded = encode_notes(tokenizer, everything[start : start + batch_size], MINILM_MAX_TOKENS)
            # trim padding shared by the whole batch: same result, less arithmetic
            width = max(1, int(encoded.mask.sum(axis=1).max()))
            ids = torch.from_numpy(encoded.ids[:, :width])
            mask = torch.from_numpy(encoded.mask[:, :width])
            vectors = encoder(ids, mask)
            out.append(torch.nn.functional.normalize(vectors, dim=1).numpy())
    matrix = np.concatenate(out).astype(np.float32)
    return matrix[:-1], matrix[-1]


# ---------------------------------------------------------------------------------------------------------
# tabular


def tabular_frame(
    cohort: ValidatedCohort, config: Config, categories_like: list[str] | None = None
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The wide tabular table of every usable case, the continuous and the category column names.

    Continuous: the config's catalogue features (canonical units, latest value) and numeric case columns;
    categories: one 0/1 column ``name=value`` per value of each categorical column seen in the training
    split (unseen or missing values: all 0), or exactly the columns ``categories_like`` (those of another
    export: a further test cohort is encoded as its training cohort was). Cases without observations get
    an all-missing row, because mmdx masks their whole tabular modality (age, sex and site included).
    """
    tab = config.data.tabular
    features = cohort.catalogue.keys if tab.features == "all" else list(tab.features)
    cases = cohort.cases.set_index("case_id")
    ids = list(cases.index)
    wide = aggregate_latest(cohort.observations, ids, features)
    numeric = [c for c in tab.numeric_columns if c in cases.columns]
    for column in numeric:
        wide[column] = pd.to_numeric(cases[column], errors="coerce").astype(float)
    continuous = list(wide.columns)
    train = cases[cases["split"] == Split.TRAIN.value]
    seen: dict[str, list[str]] = {}
    if categories_like is None:
        for column in (c for c in tab.categorical_columns if c in cases.columns):
            seen[column] = sorted({str(v) for v in train[column].dropna()})
    else:
        for name in categories_like:
            column, _, value = name.partition("=")
            seen.setdefault(column, []).append(value)
    categories = []
    for column, values in seen.items():
        present = cases[column] if column in cases.columns else pd.Series(np.nan, index=cases.index)
        for value in values:
            name = f"{column}={value}"
            wide[name] = (present.astype(str) == value).astype(float).where(present.notna(), 0.0)
            categories.append(name)
    absent = ~cases["has_tabular"].to_numpy(dtype=bool)
    wide.loc[absent, continuous] = np.nan
    wide.loc[absent, categories] = 0.0
    wide.index.name = "case_id"
    return wide, continuous, categories


# ---------------------------------------------------------------------------------------------------------
# the export


NoteEmbedder = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


def export_key(
    fingerprint: str, config: Config, embedder: str = "minilm_embeddings", like: str | None = None
) -> str:
    """Identity of an export: the cohort's bytes, the preprocessing settings, the note embedder, the export
    schema and, for a further test cohort, the key of the training cohort's export it is encoded like."""
    settings = {
        "schema": EXPORT_SCHEMA,
        "cohort": fingerprint,
        "image": config.data.image.model_dump(mode="json"),
        "tabular": config.data.tabular.model_dump(mode="json"),
        "text": config.data.text.model_dump(mode="json"),
        "minilm_max_tokens": MINILM_MAX_TOKENS,
        "stats": image_stat_names(),
    }
    if embedder != "minilm_embeddings":
        settings["embedder"] = embedder
    if like is not None:
        settings["like"] = like
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def cohort_dims(cohort: Path) -> int:
    import yaml

    spec = yaml.safe_load((Path(cohort) / "cohort.yaml").read_text(encoding="utf-8")) or {}
    return int((spec.get("image") or {}).get("dims", 2))


def export_cohort(
    cohort: str | Path,
    out: str | Path,
    config_path: str | Path | None = None,
    workers: int = 2,
    log: Callable[[str], None] = print,
    embed_notes: NoteEmbedder = minilm_embeddings,
    like: PeerExport | None = None,
) -> dict:
    """Write (or reuse) the export of ``cohort`` in ``out``; returns its manifest.

    ``embed_notes`` maps the notes ``[N]`` to ``([N, D], [D])`` (their embeddings and the empty note's);
    the default is all-MiniLM-L6-v2. ``like``: the export of a training cohort; ``cohort`` is then a further
    test cohort, encoded as that export was (its image plan, applied as it is, and its category columns)
    and every usable case of it is in the test split, whatever its own ``split`` column says.
    """
    cohort, out = Path(cohort), Path(out)
    config_path = Path(config_path) if config_path else DEFAULT_CONFIGS[cohort_dims(cohort)]
    config = load_config(config_path)
    validated = validate_cohort(cohort, workers=workers)
    if not validated.report.usable:
        raise MmdxError(f"{cohort} has no usable case; run `mmdx validate {cohort}` for the reasons")
    key = export_key(
        validated.fingerprint(),
        config,
        getattr(embed_notes, "__qualname__", type(embed_notes).__qualname__),
        like=None if like is None else like.manifest["key"],
    )
    manifest_file = out / ExportFile.MANIFEST
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        if manifest.get("key") == key:
            log(f"reusing the export in {out}")
            return manifest
    out.mkdir(parents=True, exist_ok=True)
    manifest_file.unlink(missing_ok=True)  # the manifest is written last: its presence marks a whole export

    # the image plan mmdx training would fit, or the training export's plan applied as it is (either may
    # drop images it cannot take, so it comes first)
    if like is None:
        plan = plan_cohort_images(validated, config.data.image).plan
    else:
        plan = plan_cohort_images(
            validated, plan=ImagePlan.from_dict(like.manifest["image"]["settings"])
        ).plan
    cases = validated.cases.reset_index(drop=True)
    ids = cases["case_id"].tolist()
    table = pd.DataFrame(
        {
            "case_id": ids,
            "split": cases["split"] if like is None else Split.TEST.value,
            "label": cases["label"],
            **{f"has_{m.value}": cases[f"has_{m.value}"].astype(int) for m in MODALITIES},
        }
    )
    table.to_csv(out / ExportFile.CASES, index=False)

    wide, continuous, categories = tabular_frame(
        validated, config, None if like is None else like.category_columns
    )
    if like is not None and continuous != like.continuous_columns:
        raise MmdxError(
            f"{cohort}: tabular columns {continuous} differ from those of the training export "
            f"{like.directory} ({like.continuous_columns}); export both with the same config"
        )
    wide.loc[ids].reset_index().to_csv(out / ExportFile.TABULAR, index=False)

    texts = [validated.notes.get(c) or "" for c in ids]
    with (out / ExportFile.NOTES).open("w", encoding="utf-8") as fh:
        for case_id, text in zip(ids, texts, strict=True):
            fh.write(json.dumps({"case_id": case_id, "text": text}) + "\n")

    dims = plan.dims
    mode = config.data.cache.mode if config.data.cache.mode != "none" else "disk"
    cache = ImageCache(plan, mode, declared_modality=declared_modality(validated))
    paths = [
        p if isinstance(p, str) and h else None
        for p, h in zip(cases["image_path"], cases["has_image"], strict=True)
    ]
    log(f"preprocessing {sum(p is not None for p in paths)} images as mmdx does ({config_path.name})")
    cache.warm([p for p in paths if p], workers=workers)
    shape = tuple(plan.shape)
    volumes = np.zeros((len(ids), *shape), dtype=np.float32)
    for i, path in enumerate(paths):
        if path is not None:
            volumes[i] = cache.load(path)[0][0]
    stats = np.stack([image_statistics(v) for v in volumes])
    blank_stats = image_statistics(np.zeros(shape, dtype=np.float32))
    np.save(out / ExportFile.IMAGE_STATS, stats)
    np.save(out / ExportFile.IMAGE_STATS_BLANK, blank_stats)
    if dims == 3:
        np.save(out / ExportFile.IMAGE_3D, volumes)
        np.save(out / ExportFile.IMAGE_2D, np.stack([middle_axial_slice(v) for v in volumes]))
    else:
        np.save(out / ExportFile.IMAGE_2D, volumes)
        (out / ExportFile.IMAGE_3D).unlink(missing_ok=True)

    log(f"embedding {sum(bool(t) for t in texts)} notes")
    embeddings, empty = embed_notes(texts)
    np.save(out / ExportFile.MINILM, embeddings)
    np.save(out / ExportFile.MINILM_EMPTY, empty)

    counts = {s.value: int(((table["split"] == s.value) & table["label"].notna()).sum()) for s in Split}
    manifest = {
        "schema": EXPORT_SCHEMA,
        "key": key,
        "cohort": {
            "path": str(validated.root),
            "name": validated.name,
            "fingerprint": validated.fingerprint(),
            "bayes_auroc": validated.spec.get("bayes_auroc"),
            "modality_auroc": validated.spec.get("modality_auroc"),
        },
        "config": str(config_path),
        "cases": len(ids),
        "labelled_per_split": counts,
        "presence": {m.value: int(table[f"has_{m.value}"].sum()) for m in PeerModality},
        "image": {
            "dims": dims,
            "shape": list(shape),
            "settings": plan.to_dict(),
            "image2d": "the preprocessed image" if dims == 2 else "the middle axial slice of the volume",
        },
        "tabular": {"continuous": continuous, "categories": categories},
        "image_stats": image_stat_names(),
        "minilm": {"model": "all-MiniLM-L6-v2", "max_tokens": MINILM_MAX_TOKENS, "normalised": True},
        # the token budget of mmdx's note encoder, given to peers that tokenise notes themselves
        "text_max_length": config.data.text.max_length,
        "train": {"epochs": config.train.epochs, "patience": config.train.patience},
        "like": None if like is None else {"directory": str(like.directory), "key": like.manifest["key"]},
    }
    manifest_file.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    log(f"export written to {out}: {len(ids)} cases, splits {counts}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cohort", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--config", type=Path, help="mmdx config whose preprocessing the export follows")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--like",
        type=Path,
        metavar="EXPORT",
        help="the export of a training cohort: COHORT is a further test cohort, encoded as that export "
        "(its image plan and category columns), every case in the test split",
    )
    args = parser.parse_args(argv)
    like = PeerExport(args.like) if args.like else None
    export_cohort(args.cohort, args.out, args.config, args.workers, like=like)
    return 0


if __name__ == "__main__":
    sys.exit(main())
