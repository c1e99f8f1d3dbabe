"""Text encoders: embedding-level equivalence (for attribution), padding, offline pretrained checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmdx.errors import MmdxError
from mmdx.models.encoders.text import PretrainedTextEncoder, TextTransformer, masked_mean, minilm_folder
from mmdx.models.hparams import HyperParameterError
from mmdx.models.registry import build_encoder, pretrained_tokenizer_path


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT saved as a local Hugging Face folder, with a tokenizer.json."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i for i in range(2, 40)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def ids_and_mask(batch: int = 3, length: int = 10, vocab: int = 40, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids * mask, mask


def encoders(tiny_bert: Path) -> dict:
    torch.manual_seed(0)
    return {
        "transformer": TextTransformer(vocab_size=40, dim=16, heads=2, depth=2, max_length=32),
        "hf_local_frozen": PretrainedTextEncoder(tiny_bert, freeze=True),
        "hf_local_finetuned": PretrainedTextEncoder(tiny_bert, freeze=False),
    }


@pytest.mark.parametrize("kind", ["transformer", "hf_local_frozen", "hf_local_finetuned"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_forward_equals_forward_embeddings(tiny_bert: Path, kind: str, mode: str) -> None:
    encoder = encoders(tiny_bert)[kind].train(mode == "train")
    ids, mask = ids_and_mask()
    torch.manual_seed(1)  # identical dropout masks in training mode
    direct = encoder(ids, mask)
    torch.manual_seed(1)
    via_embeddings = encoder.forward_embeddings(encoder.embedding_layer(ids), mask)
    assert torch.equal(direct, via_embeddings)
    assert direct.shape == (3, encoder.out_dim)


@pytest.mark.parametrize("kind", ["transformer", "hf_local_frozen"])
def test_padding_is_ignored(tiny_bert: Path, kind: str) -> None:
    encoder = encoders(tiny_bert)[kind].eval()
    ids, mask = ids_and_mask()
    with torch.no_grad():
        short = encoder(ids[2:, :3], mask[2:, :3])
        padded = encoder(ids[2:], mask[2:])
        different_padding = encoder(torch.where(mask[2:].bool(), ids[2:], 7), mask[2:])
    assert torch.allclose(short, padded, atol=1e-5)
    assert torch.allclose(padded, different_padding, atol=1e-5)


@pytest.mark.parametrize("kind", ["transformer", "hf_local_frozen"])
def test_text_without_tokens_encodes_to_zero_and_leaves_the_others_alone(tiny_bert: Path, kind: str) -> None:
    encoder = encoders(tiny_bert)[kind].eval()
    ids, mask = ids_and_mask()
    empty_mask = mask.clone()
    empty_mask[0] = 0
    embeds = encoder.embedding_layer(ids).detach().requires_grad_(True)
    out = encoder.forward_embeddings(embeds, empty_mask)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    out.sum().backward()
    assert torch.isfinite(embeds.grad).all()
    with torch.no_grad():
        alone = encoder(ids[1:], mask[1:])
    assert torch.allclose(out[1:].detach(), alone, atol=1e-5)


def test_embedding_gradients_attribute_tokens(tiny_bert: Path) -> None:
    # What Integrated Gradients needs: a gradient per real token, none for padding.
    encoder = encoders(tiny_bert)["transformer"].eval()
    ids, mask = ids_and_mask()
    embeds = encoder.embedding_layer(ids).detach().requires_grad_(True)
    # A random read-out: the plain sum of a LayerNorm output is constant and has no gradient.
    readout = torch.randn(encoder.out_dim, generator=torch.Generator().manual_seed(0))
    (encoder.forward_embeddings(embeds, mask) @ readout).sum().backward()
    per_token = embeds.grad.abs().sum(-1)
    assert (per_token[mask.bool()] > 0).all()
    assert (per_token[~mask.bool()] == 0).all()


def test_masked_mean() -> None:
    hidden = torch.arange(12.0).reshape(1, 4, 3).repeat(2, 1, 1)
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
    out = masked_mean(hidden, mask)
    assert torch.equal(out[0], hidden[0, :2].mean(0))
    assert torch.equal(out[1], torch.zeros(3))


def test_bad_inputs_are_explained() -> None:
    encoder = TextTransformer(vocab_size=40, dim=16, heads=2, max_length=8)
    with pytest.raises(MmdxError, match="token ids must lie in 0..39"):
        encoder(torch.tensor([[1, 40]]))
    with pytest.raises(MmdxError, match="exceeds max_length=8"):
        encoder(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(MmdxError, match=r"mask must have shape \[B, T\]"):
        encoder(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 4))
    with pytest.raises(MmdxError, match="integer tensor"):
        encoder(torch.ones(2, 5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab_size": 0}, "vocab_size must be a positive integer"),
        ({"vocab_size": 10, "pad_id": 10}, "pad_id=10 must be a token id below vocab_size=10"),
        ({"vocab_size": 10, "dim": 30, "heads": 4}, "heads=4 does not divide dim=30"),
        ({"vocab_size": 10, "dropout": 1.5}, "dropout"),
    ],
)
def test_transformer_rejects_bad_hyper_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(HyperParameterError, match=message):
        TextTransformer(**kwargs)


def test_hf_local_needs_a_model_folder(tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(HyperParameterError, match="does not exist"):
        build_encoder("hf_local", path=tmp_path / "absent")
    with pytest.raises(HyperParameterError, match="has no config.json"):
        build_encoder("hf_local", path=tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(HyperParameterError, match="cannot load a model"):
        build_encoder("hf_local", path=tmp_path)
    encoder = build_encoder("hf_local", path=str(tiny_bert))
    assert encoder.out_dim == 32 and encoder.max_length == 64


def test_freezing(tiny_bert: Path) -> None:
    frozen = PretrainedTextEncoder(tiny_bert, freeze=True).train()
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not frozen.model.training, "a frozen encoder keeps dropout off"
    tuned = PretrainedTextEncoder(tiny_bert, freeze=False).train()
    trainable = {name for name, p in tuned.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in tuned.named_parameters() if ".pooler." not in name}
    assert tuned.model.training
    ids, mask = ids_and_mask()
    tuned(ids, mask).square().sum().backward()
    for name, parameter in tuned.named_parameters():
        assert parameter.requires_grad == (parameter.grad is not None), f"unused trainable parameter {name}"
    assert tuned.embedding_layer.weight.grad.abs().sum() > 0


def test_tokenizer_paths(tiny_bert: Path, tmp_path: Path) -> None:
    assert pretrained_tokenizer_path("transformer", vocab_size=100) is None
    assert pretrained_tokenizer_path("hf_local", path=tiny_bert) == tiny_bert / "tokenizer.json"
    assert pretrained_tokenizer_path("minilm") == minilm_folder() / "tokenizer.json"
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MmdxError, match="has no tokenizer.json"):
        pretrained_tokenizer_path("hf_local", path=tmp_path)
    with pytest.raises(MmdxError, match="reads image input, not text"):
        pretrained_tokenizer_path("small_cnn")


def test_minilm_loads_offline_and_understands_text(monkeypatch) -> None:
    from tokenizers import Tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = build_encoder("minilm").eval()
    assert encoder.out_dim == 384 and encoder.max_length == 512
    assert not any(p.requires_grad for p in encoder.parameters())
    tokenizer = Tokenizer.from_file(str(pretrained_tokenizer_path("minilm")))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    encodings = tokenizer.encode_batch(
        [
            "fever and productive cough",
            "productive cough with a high fever",
            "fractured left wrist after a fall",
        ]
    )
    ids = torch.tensor([e.ids for e in encodings])
    mask = torch.tensor([e.attention_mask for e in encodings])
    with torch.no_grad():
        out = encoder(ids, mask)
        via_embeddings = encoder.forward_embeddings(encoder.embedding_layer(ids), mask)
    assert torch.equal(out, via_embeddings)
    similarity = torch.nn.functional.cosine_similarity(out[:, None], out[None, :], dim=-1)
    # Pretrained weights put paraphrases together; random weights would not.
    assert similarity[0, 1] > 0.7
    assert similarity[0, 1] > similarity[0, 2] + 0.3


@pytest.mark.parametrize("kind", ["transformer", "text_cnn"])
def test_negation_aware_encoders_read_a_negated_token_as_its_token_plus_one_vector(kind: str) -> None:
    from mmdx.models.encoders.text import NegationAwareEmbedding, TextCNN

    torch.manual_seed(0)
    build = TextTransformer if kind == "transformer" else TextCNN
    encoder = build(
        vocab_size=40,
        max_length=16,
        negation=True,
        **({"heads": 2, "dim": 16} if kind == "transformer" else {}),
    )
    layer = encoder.embedding_layer
    assert isinstance(layer, NegationAwareEmbedding) and encoder.vocab_size == 80
    ids, mask = ids_and_mask(length=10)
    negated = ids.clone()
    negated[:, 2:5] += 40 * (mask[:, 2:5] > 0)
    embeds = layer(negated)
    assert torch.allclose(
        embeds[:, 2:5] - layer(ids)[:, 2:5], layer.negation.expand(3, 3, -1) * (mask[:, 2:5, None] > 0)
    )
    assert (
        torch.equal(embeds[:, 5:], layer(ids)[:, 5:]) and not layer(torch.zeros(1, 1, dtype=torch.long)).any()
    )
    encoder.eval()
    assert torch.equal(encoder(negated, mask), encoder.forward_embeddings(encoder.embed(negated), mask))
    assert not torch.allclose(encoder(negated, mask), encoder(ids, mask))
    with pytest.raises(MmdxError, match="0..79"):
        encoder(torch.full((1, 3), 80), torch.ones(1, 3))
    plain = build(vocab_size=40, max_length=16, **({"heads": 2, "dim": 16} if kind == "transformer" else {}))
    with pytest.raises(MmdxError, match="0..39"):
        plain(negated, mask)
    with pytest.raises(HyperParameterError, match="negation must be true or false"):
        build(vocab_size=40, negation="yes")
