"""Where a CPU training step of mmdx spends its time: torch.profiler over a few steps of the demo config.

    .venv/bin/python -m benchmarks.profile_step [COHORT] [--config configs/demo.yaml] [--steps 20]
        [--warmup 3] [--set key=value ...] [--trace trace.json]

Without COHORT a 200-case 2D synthetic cohort is written to a temporary folder. The step is the one of
``mmdx.training.trainer.Trainer.fit`` (same data loader, collation, modality dropout, loss with the auxiliary
unimodal heads, gradient clipping, AdamW), each phase inside a ``record_function`` region:
``data`` (fetching the next batch: dataset ``__getitem__`` and ``collate``), ``prepare`` (to device, modality
dropout, learning rate), ``forward``, ``loss``, ``backward``, ``clip``, ``optimizer`` and ``bookkeeping``
(reading the loss back, as the trainer does for its progress bar).

Prints the wall time per step and per phase, the top operators by self CPU time, and the share of the step
outside the model's own arithmetic: everything but the self time of ATen operators run inside ``forward``
and ``backward`` (data loading, collation, Python and dispatch overhead, the optimizer, bookkeeping).
It then times the real ``Trainer.fit`` for the same number of steps, so that overhead of the trainer
itself (progress bar, checkpoints excluded) shows as the difference from the mirrored loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

REPO = Path(__file__).resolve().parents[1]
PHASES = ("data", "prepare", "forward", "loss", "backward", "clip", "optimizer", "bookkeeping")
REGION = "phase::"


@dataclass
class PhaseTime:
    name: str
    wall_ms: float  # per step
    aten_ms: float  # per step: self time of ATen operators inside the phase
    top: list[
        tuple[str, float, int]
    ]  # the phase's operators by self time: (name, ms per step, calls per step)


def phase_times(events: Iterable, steps: int) -> list[PhaseTime]:
    """Per-step wall and ATen self time of each ``phase::`` region, from a profiler's function events.

    ``events``: ``torch.autograd.profiler_util.FunctionEvent`` objects (``prof.events()``), whose
    ``cpu_children`` link the tree; times are in microseconds.
    """
    wall: dict[str, float] = {}
    aten: dict[str, float] = {}
    ops: dict[str, dict[str, list[float]]] = {}
    for event in events:
        if not event.name.startswith(REGION):
            continue
        name = event.name.removeprefix(REGION)
        wall[name] = wall.get(name, 0.0) + event.time_range.elapsed_us()
        stack = list(event.cpu_children)
        while stack:
            child = stack.pop()
            if child.name.startswith("aten::"):
                aten[name] = aten.get(name, 0.0) + child.self_cpu_time_total
                entry = ops.setdefault(name, {}).setdefault(child.name, [0.0, 0])
                entry[0] += child.self_cpu_time_total
                entry[1] += 1
            stack.extend(child.cpu_children)
    out = []
    for n in PHASES:
        if n not in wall:
            continue
        ranked = sorted(ops.get(n, {}).items(), key=lambda item: -item[1][0])[:3]
        top = [(op, total / 1000 / steps, round(calls / steps)) for op, (total, calls) in ranked]
        out.append(PhaseTime(n, wall[n] / 1000 / steps, aten.get(n, 0.0) / 1000 / steps, top))
    return out


def outside_arithmetic_share(phases: list[PhaseTime], step_ms: float) -> float:
    """Share of the step not spent in ATen operators of the forward and backward passes."""
    arithmetic = sum(p.aten_ms for p in phases if p.name in ("forward", "backward"))
    return max(0.0, 1.0 - arithmetic / step_ms) if step_ms > 0 else float("nan")


def phase_table(phases: list[PhaseTime], step_ms: float) -> str:
    lines = [
        "| phase | ms/step | share of step | ATen self ms | other (Python, dispatch, waits) ms | top operators "
        "(ms/step, calls/step) |",
        "|---|---|---|---|---|---|",
    ]
    for p in phases:
        top = ", ".join(f"{op.removeprefix('aten::')} {ms:.1f} ({calls})" for op, ms, calls in p.top)
        lines.append(
            f"| {p.name} | {p.wall_ms:.2f} | {100 * p.wall_ms / step_ms:.1f}% | {p.aten_ms:.2f} | "
            f"{max(0.0, p.wall_ms - p.aten_ms):.2f} | {top} |"
        )
    accounted = sum(p.wall_ms for p in phases)
    between = max(0.0, step_ms - accounted)
    lines.append(f"| (between phases) | {between:.2f} | {100 * between / step_ms:.1f}% | | | |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------


def prepare(cohort: Path, config_path: Path, overrides: list[str]):
    """The training set, model and optimizer exactly as ``mmdx train`` builds them."""
    from mmdx.config import load_config
    from mmdx.data.dataset import ImageCache, MultimodalDataset, build_case_table, fit_preprocessing
    from mmdx.data.plan import declared_modality
    from mmdx.data.validation import validate_cohort
    from mmdx.models.classifier import build_model
    from mmdx.models.factory import model_arguments, pretrained_tokenizer
    from mmdx.training.trainer import balanced_pos_weight

    config = load_config(config_path, overrides)
    torch.manual_seed(config.seed)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    validated = validate_cohort(cohort)
    preprocessing = fit_preprocessing(validated, config, pretrained_tokenizer(config.model))
    table = build_case_table(validated, preprocessing)
    split = validated.cases.set_index("case_id").loc[table.case_ids, "split"].to_numpy()
    train_idx = np.flatnonzero((split == "train") & ~np.isnan(table.labels))
    val_idx = np.flatnonzero((split == "val") & ~np.isnan(table.labels))
    cache = None
    if preprocessing.image_config is not None:
        cache = ImageCache(
            preprocessing.image_config,
            config.data.cache.mode,
            config.data.cache.dir,
            declared_modality(validated),
        )
        cache.warm(table.image_paths, workers=2)
    train_set = MultimodalDataset(table.subset(train_idx), preprocessing, cache)
    val_set = MultimodalDataset(table.subset(val_idx), preprocessing, cache)
    model = build_model(
        **model_arguments(config.model, preprocessing, aux_heads=config.train.aux_loss_weight > 0)
    )
    return config, train_set, val_set, model, balanced_pos_weight(table.labels[train_idx])


def profile_steps(
    config,
    train_set,
    model,
    pos_weight: float,
    steps: int,
    warmup: int,
    trace: Path | None,
    adamw: str = "default",
):
    from torch.utils.data import DataLoader

    from mmdx.data.dataset import collate
    from mmdx.keys import Keys
    from mmdx.training.inference import to_device
    from mmdx.training.trainer import auxiliary_loss, modality_dropout

    cfg, loader_cfg = config.train, config.data.loader
    # "default" is what the trainer builds; the others measure the multi-tensor and fused implementations
    implementation = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[adamw]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        **implementation,
    )
    loader = DataLoader(
        train_set,
        batch_size=loader_cfg.batch_size,
        shuffle=True,
        num_workers=loader_cfg.workers,
        collate_fn=collate,
        persistent_workers=loader_cfg.workers > 0,
        drop_last=True,
    )
    device = torch.device("cpu")
    weight = torch.tensor(pos_weight)
    generator = torch.Generator().manual_seed(0)
    model.train()

    def batches():
        while True:
            yield from loader

    stream = batches()
    losses: list[float] = []

    def step() -> None:
        with record_function(REGION + "data"):
            batch = next(stream)
        with record_function(REGION + "prepare"):
            batch = to_device(batch, device)
            labels = batch[Keys.LABEL].float()
            batch[Keys.PRESENCE] = modality_dropout(batch[Keys.PRESENCE], cfg.modality_dropout, generator)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr
        with record_function(REGION + "forward"):
            out = model(batch)
        with record_function(REGION + "loss"):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                out.logits.float(), labels, pos_weight=weight
            )
            if out.aux_logits is not None and cfg.aux_loss_weight > 0:
                loss = loss + cfg.aux_loss_weight * auxiliary_loss(
                    out.aux_logits.float(), labels, batch[Keys.PRESENCE], weight
                )
        with record_function(REGION + "backward"):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        with record_function(REGION + "clip"):
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        with record_function(REGION + "optimizer"):
            optimizer.step()
        with record_function(REGION + "bookkeeping"):
            losses.append(float(loss.detach()))

    for _ in range(warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - started
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    return prof, 1000 * wall / steps


def time_trainer(config, train_set, val_set, model, pos_weight: float, steps: int) -> float:
    """Milliseconds per step of the real ``Trainer.fit`` over ``steps`` steps (its epoch timers, which leave
    out validation and checkpoints; a small training set takes several epochs)."""
    import math

    from mmdx.training.trainer import Trainer

    batch = config.data.loader.batch_size
    per_epoch = len(train_set) // batch if len(train_set) > batch else 1  # the trainer drops the last batch
    epochs = math.ceil(steps / max(1, per_epoch))
    train_cfg = config.train.model_copy(update={"max_steps": steps, "epochs": epochs, "patience": epochs + 1})
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(
            model,
            train_cfg,
            config.data.loader,
            train_set,
            val_set,
            Path(run),
            progress=True,
            pos_weight=pos_weight,
        )
        result = trainer.fit()
    run_steps = min(steps, epochs * trainer.steps_per_epoch)
    return 1000 * sum(h.seconds for h in result.history) / run_steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cohort", type=Path, nargs="?", help="cohort (default: a fresh 200-case 2D cohort)")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="operators listed")
    parser.add_argument("--trace", type=Path, help="also write a Chrome trace here")
    parser.add_argument(
        "--adamw",
        choices=["default", "foreach", "fused"],
        default="default",
        help="AdamW implementation of the mirrored loop (default: the trainer's)",
    )
    parser.add_argument("--skip-trainer", action="store_true", help="do not time the real Trainer.fit")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        cohort = args.cohort
        if cohort is None:
            from mmdx.data.synth import SynthOptions, synthesize_cohort

            cohort = Path(scratch) / "profile2d"
            synthesize_cohort(cohort, SynthOptions(n_cases=200, seed=3, dims=2, size=32, workers=1))
        config, train_set, val_set, model, pos_weight = prepare(cohort, args.config, args.overrides)
        prof, step_ms = profile_steps(
            config, train_set, model, pos_weight, args.steps, args.warmup, args.trace
        )
        phases = phase_times(prof.events(), args.steps)
        outside = outside_arithmetic_share(phases, step_ms)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {config.data.loader.batch_size}, "
            f"{len(train_set)} training cases; {args.steps} profiled steps after {args.warmup} warm-up steps"
        )
        print(f"\nwall time per step: {step_ms:.1f} ms\n")
        print(phase_table(phases, step_ms))
        print(
            f"\nshare of the step outside the model's own arithmetic (forward/backward ATen self time): "
            f"{100 * outside:.1f}%\n"
        )
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
        trainer_ms = None
        if not args.skip_trainer:
            trainer_ms = time_trainer(config, train_set, val_set, model, pos_weight, args.steps)
            print(f"Trainer.fit: {trainer_ms:.1f} ms per step (mirrored loop: {step_ms:.1f} ms)")
        if args.json:
            summary = {
                "threads": torch.get_num_threads(),
                "adamw": args.adamw,
                "step_ms": step_ms,
                "trainer_step_ms": trainer_ms,
                "outside_arithmetic_share": outside,
                "phases": [p.__dict__ for p in phases],
                "top": [
                    {
                        "name": e.key,
                        "self_cpu_ms_per_step": e.self_cpu_time_total / 1000 / args.steps,
                        "calls": e.count,
                    }
                    for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[: args.top]
                ],
            }
            args.json.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
