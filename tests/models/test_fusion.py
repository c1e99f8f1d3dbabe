"""Properties of every fusion: exact masking, finite outputs without evidence, gates, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdx.errors import MmdxError
from mmdx.keys import MODALITIES, Modality
from mmdx.models.fusion import FUSIONS, FusionOutput, build_fusion
from mmdx.models.hparams import HyperParameterError

DIMS = {Modality.IMAGE: 12, Modality.TABULAR: 7, Modality.TEXT: 5}
NAMES = FUSIONS.names()
SUBSETS = [
    tuple(m for m, keep in zip(MODALITIES, bits, strict=True) if keep)
    for bits in ((1, 1, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1))
]


def make(name: str, modalities=MODALITIES, seed: int = 0):
    torch.manual_seed(seed)
    return build_fusion(name, {m: DIMS[m] for m in modalities}, dim=16)


def features(modalities, batch: int, seed: int = 0, scale: float = 1.0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, DIMS[m], generator=generator) * scale for m in modalities}


def effective(presence: torch.Tensor, modalities) -> torch.Tensor:
    """Presence restricted to the modalities the fusion has, ``[B, M]``."""
    has = torch.tensor([m in modalities for m in MODALITIES])
    return presence & has


def garbage_in_absent(feats: dict, presence: torch.Tensor, fill: str, seed: int = 1) -> dict:
    """A copy of ``feats`` where every absent (case, modality) holds random huge values, NaN or inf."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for m, x in feats.items():
        absent = ~presence[:, MODALITIES.index(m)]
        noise = {
            "large": torch.randn(x.shape, generator=generator) * 1e4,
            "nan": torch.full(x.shape, float("nan")),
            "inf": torch.full(x.shape, float("inf")),
        }[fill]
        out[m] = torch.where(absent[:, None], noise, x)
    return out


def check_output(out: FusionOutput, presence: torch.Tensor, modalities, batch: int) -> None:
    present = effective(presence, modalities)
    assert out.logits.shape == (batch,)
    assert torch.isfinite(out.logits).all()
    assert out.gates.shape == (batch, len(MODALITIES))
    assert torch.isfinite(out.gates).all()
    assert (out.gates >= 0).all() and (out.gates <= 1).all()
    assert (out.gates[~present] == 0).all(), "an absent modality has a non-zero gate"
    if out.modality_logits is not None:
        assert out.modality_logits.shape == (batch, len(MODALITIES))
        assert (out.modality_logits[~present] == 0).all()


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    modalities=st.sampled_from(SUBSETS),
    rows=st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=6),
    fill=st.sampled_from(["large", "nan", "inf"]),
    seed=st.integers(0, 2**16),
)
def test_absent_modality_contributes_exactly_nothing(name, modalities, rows, fill, seed) -> None:
    fusion = make(name, modalities).eval()
    presence = torch.tensor(rows, dtype=torch.bool)
    feats = features(modalities, len(rows), seed=seed)
    with torch.no_grad():
        reference = fusion(feats, presence)
        perturbed = fusion(garbage_in_absent(feats, presence, fill, seed=seed + 1), presence)
    check_output(reference, presence, modalities, len(rows))
    assert torch.equal(reference.logits, perturbed.logits)
    assert torch.equal(reference.gates, perturbed.gates)


@pytest.mark.parametrize("name", NAMES)
def test_masking_is_exact_in_training_mode_too(name: str) -> None:
    fusion = make(name).train()
    presence = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    feats = features(MODALITIES, 4)
    torch.manual_seed(3)
    reference = fusion(feats, presence)
    torch.manual_seed(3)  # same dropout masks
    perturbed = fusion(garbage_in_absent(feats, presence, "large"), presence)
    assert torch.equal(reference.logits, perturbed.logits)


@pytest.mark.parametrize("name", NAMES)
def test_absent_modality_changes_the_prediction_when_present(name: str) -> None:
    # The converse of masking: a present modality's features do matter (the test above is not vacuous).
    fusion = make(name).eval()
    presence = torch.ones(3, 3, dtype=torch.bool)
    feats = features(MODALITIES, 3)
    changed = dict(feats)
    changed[Modality.IMAGE] = feats[Modality.IMAGE] + 1.0
    with torch.no_grad():
        assert not torch.equal(fusion(feats, presence).logits, fusion(changed, presence).logits)


@pytest.mark.parametrize("name", NAMES)
def test_missing_key_equals_absent_modality(name: str) -> None:
    fusion = make(name).eval()
    presence = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1]], dtype=torch.bool)
    feats = features(MODALITIES, 3)
    without_text = {m: x for m, x in feats.items() if m != Modality.TEXT}
    no_text = presence.clone()
    no_text[:, 2] = False
    with torch.no_grad():
        assert torch.equal(fusion(without_text, presence).logits, fusion(feats, no_text).logits)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("modalities", SUBSETS, ids=lambda s: "+".join(s))
def test_no_evidence_batch_is_finite_with_finite_gradients(name: str, modalities) -> None:
    fusion = make(name, modalities).train()
    feats = {m: x.requires_grad_(True) for m, x in features(modalities, 4, scale=100.0).items()}
    presence = torch.zeros(4, 3, dtype=torch.bool)
    out = fusion(feats, presence)
    check_output(out, presence, modalities, 4)
    fusion.eval()
    with torch.no_grad():
        logits = fusion(feats, presence).logits
    assert torch.equal(logits, logits[:1].expand(4)), "without evidence every case gets the same prediction"
    out.logits.sum().backward()
    for m, x in feats.items():
        assert x.grad is not None and (x.grad == 0).all(), f"gradient leaked into absent {m}"
    for name, parameter in fusion.named_parameters():
        assert parameter.grad is not None, f"{name} takes no part in the computation"
        assert torch.isfinite(parameter.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_a_modality_absent_from_the_whole_batch_leaves_no_nan(name: str) -> None:
    fusion = make(name).train()
    feats = {m: x.requires_grad_(True) for m, x in features(MODALITIES, 5).items()}
    presence = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 0]], dtype=torch.bool)
    out = fusion(feats, presence)
    check_output(out, presence, MODALITIES, 5)
    out.logits.square().sum().backward()
    assert (feats[Modality.TEXT].grad == 0).all()
    assert feats[Modality.IMAGE].grad[0].abs().sum() > 0, "a present modality gets a gradient"
    grads = [p.grad for p in fusion.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("modality", MODALITIES)
def test_single_modality_fusion_predicts(name: str, modality: Modality) -> None:
    fusion = make(name, (modality,)).eval()
    presence = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        out = fusion(features((modality,), 4), presence)
    check_output(out, presence, (modality,), 4)


@pytest.mark.parametrize("name", ["gated_attention", "gated"])
def test_gates_vary_with_the_case(name: str) -> None:
    fusion = make(name).eval()
    with torch.no_grad():
        gates = fusion(features(MODALITIES, 8), torch.ones(8, 3, dtype=torch.bool)).gates
    assert ((gates > 0) & (gates < 1)).all()
    assert gates.std(dim=0).min() > 0, "a gate is constant across cases"


@pytest.mark.parametrize("name", ["concat", "late"])
def test_ungated_fusions_report_equal_weights(name: str) -> None:
    fusion = make(name).eval()
    presence = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]], dtype=torch.bool)
    gates = fusion(features(MODALITIES, 4), presence).gates
    expected = presence.float() / presence.sum(1, keepdim=True).clamp_min(1)
    assert torch.allclose(gates, expected)


def test_late_fusion_averages_the_present_modality_logits() -> None:
    fusion = make("late").eval()
    presence = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        out = fusion(features(MODALITIES, 3), presence)
    assert torch.allclose(out.logits[0], out.modality_logits[0].mean())
    assert torch.allclose(out.logits[1], out.modality_logits[1, [0, 2]].mean())
    assert torch.equal(out.logits[2], fusion.no_evidence_logit.detach())


@pytest.mark.parametrize("name", NAMES)
def test_fusion_learns_from_whichever_modality_is_present(name: str) -> None:
    # The label is written in the first feature of image or tabular; each case has one of the two.
    generator = torch.Generator().manual_seed(0)
    n = 128
    labels = (torch.rand(n, generator=generator) < 0.5).float()
    signal = (2 * labels - 1)[:, None]
    feats = {m: torch.randn(n, DIMS[m], generator=generator) for m in MODALITIES}
    feats[Modality.IMAGE][:, :1] += 2 * signal
    feats[Modality.TABULAR][:, :1] += 2 * signal
    presence = torch.zeros(n, 3, dtype=torch.bool)
    presence[:, 0] = torch.rand(n, generator=generator) < 0.5
    presence[:, 1] = ~presence[:, 0]
    presence[:, 2] = True  # text is pure noise
    fusion = make(name)
    optimiser = torch.optim.Adam(fusion.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(fusion(feats, presence).logits, labels)
        loss.backward()
        optimiser.step()
    fusion.eval()
    with torch.no_grad():
        accuracy = ((fusion(feats, presence).logits > 0).float() == labels).float().mean()
    assert accuracy > 0.9


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("gated_attention", {"dim": 0}, "dim must be a positive integer"),
        ("gated_attention", {"dim": 16, "heads": 3}, "heads=3 does not divide dim=16"),
        ("attention", {"dim": 10, "heads": 4}, "does not divide"),
        ("concat", {"dim": -1}, "dim must be a positive integer"),
        ("late", {"dropout": 1.0}, "dropout must be a number in"),
        ("gated", {"dropout": -0.1}, "dropout"),
    ],
)
def test_bad_hyper_parameters_raise_value_error(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        build_fusion(name, DIMS, **kwargs)
    assert isinstance(error.value, HyperParameterError)


@pytest.mark.parametrize("name", NAMES)
def test_bad_modality_dims_raise(name: str) -> None:
    with pytest.raises(ValueError, match="at least one modality"):
        build_fusion(name, {}, dim=16)
    with pytest.raises(ValueError, match="did you mean 'image'"):
        build_fusion(name, {"imagee": 4}, dim=16)
    with pytest.raises(ValueError, match="positive integer"):
        build_fusion(name, {Modality.IMAGE: 0}, dim=16)


def test_unknown_fusion_and_argument_are_explained() -> None:
    with pytest.raises(MmdxError, match="did you mean 'gated_attention'"):
        build_fusion("gated_atention", DIMS, dim=16)
    with pytest.raises(MmdxError, match="did you mean 'heads'"):
        build_fusion("attention", DIMS, dim=16, head=2)
    with pytest.raises(MmdxError, match="unknown argument 'heads'"):
        build_fusion("concat", DIMS, dim=16, heads=2)


def test_bad_inputs_are_explained() -> None:
    fusion = make("gated_attention", (Modality.IMAGE, Modality.TABULAR))
    feats = features((Modality.IMAGE, Modality.TABULAR), 2)
    with pytest.raises(MmdxError, match=r"presence must have shape \[B, 3\]"):
        fusion(feats, torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(MmdxError, match="built for image, tabular"):
        fusion({**feats, Modality.TEXT: torch.zeros(2, 5)}, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(MmdxError, match="out_dim does not match"):
        fusion({**feats, Modality.IMAGE: torch.zeros(2, 11)}, torch.ones(2, 3, dtype=torch.bool))


@pytest.mark.parametrize("name", ["gated_attention", "attention"])
def test_attention_never_attends_to_an_absent_modality(name: str) -> None:
    # White-box: the masking is done by the attention itself, not only by zeroing what absent cases carry.
    fusion = make(name).eval()
    presence = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=torch.bool)
    seen = {}

    def keep_mask(module, args, kwargs):
        seen["context_mask"] = kwargs["key_padding_mask"]

    def keep_weights(module, args, kwargs, output):
        seen["pool_mask"], seen["pool_weights"] = kwargs["key_padding_mask"], output[1]

    fusion.context_attention.register_forward_pre_hook(keep_mask, with_kwargs=True)
    fusion.pool_attention.register_forward_hook(keep_weights, with_kwargs=True)
    with torch.no_grad():
        fusion(features(MODALITIES, 4), presence)
    expected_mask = torch.cat([torch.zeros(4, 1, dtype=torch.bool), ~presence], dim=1)
    assert torch.equal(seen["context_mask"], expected_mask)
    assert torch.equal(seen["pool_mask"], expected_mask)
    weights = seen["pool_weights"][:, 0]  # [B, 1 + M]; column 0 is the no-evidence token
    assert (weights[:, 1:][~presence] == 0).all()
    assert torch.equal(weights[2], torch.tensor([1.0, 0.0, 0.0, 0.0]))
