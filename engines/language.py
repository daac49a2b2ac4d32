"""Small language models as engines: a generation *session* that streams text, stops on strings,
biases logits, constrains output to a JSON schema and keeps its KV cache across text appended
between generations (budget forcing appends "Wait" or the end of thinking; step-wise speculative
decoding hands a step from one model to another).

    lm = load_language_model(exported_language_model("gemma3-270m"))
    session = lm.session("Q: 3 robots carry 4 boxes each. How many boxes?\\nA:", max_length=512)
    out = session.generate(64, stop=("\\n",))      # Generated(text, tokens, reason, stop)

Two backends share the interface: onnxruntime-genai (the engine: int4 ONNX, KV cache in place,
guidance for JSON schemas), and transformers eager (the reference that ``edgerun bench language``
measures it against). Generation is greedy unless a temperature is given.
"""

from __future__ import annotations

import abc
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np

from edgerun.errors import EngineError, EngineInputError

Reason = Literal["stop", "length", "end", "max_length", "halted"]
DEFAULT_MAX_LENGTH = 2048
# JSON under a schema is laid out as json.dumps writes it: llguidance's default allows any whitespace
# inside the object, and a small model that has seen only this layout can wander off into blanks
JSON_LAYOUT = {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "}


@dataclass(frozen=True)
class Generated:
    """What one :meth:`LanguageSession.generate` call produced. ``text`` ends before the stop string
    that ended it (``stop``); ``reason``: ``stop``, ``length`` (the call's token budget), ``end``
    (the model's end-of-sequence), ``max_length`` (the session's length is used up) or ``halted``
    (the ``on_text`` callback asked to stop: a streaming guard)."""

    text: str
    tokens: int
    reason: Reason
    stop: str | None = None
    seconds: float = 0.0
    first_token_s: float | None = None
    before_stop: tuple[int, str] | None = None  # (tokens to keep, text to re-add) to take the stop back out


@dataclass(frozen=True)
class Sampling:
    """Greedy at ``temperature == 0``; else sampling at that temperature within ``top_p``, seeded."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"sampling: temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")


class LanguageSession(abc.ABC):
    """One growing token sequence (at most ``max_length`` tokens) and its KV cache."""

    max_length: int

    def __init__(self, model: LanguageModel, logit_bias: Mapping[int, float] | None):
        self.model = model
        self._bias = _bias_vector(model, logit_bias)

    @property
    @abc.abstractmethod
    def token_count(self) -> int:
        """Tokens in the sequence: prompt, appended text and generated tokens."""

    @abc.abstractmethod
    def append(self, text: str) -> None:
        """Add ``text`` to the sequence (no generation): it is read as if the model had written it."""

    @abc.abstractmethod
    def rewind(self, token_count: int) -> None:
        """Forget every token after the first ``token_count`` (and their cache); append text before
        generating again."""

    @abc.abstractmethod
    def _next_token(self) -> int | None:
        """Generate one token (biased by the session's logit bias); None when the model has ended."""

    @abc.abstractmethod
    def _room(self) -> int:
        """Tokens the session may still hold."""

    def generate(self, max_tokens: int, stop: tuple[str, ...] = (),
                 on_text: Callable[[str], bool | None] | None = None) -> Generated:
        """Up to ``max_tokens`` new tokens, ending early at the first of ``stop`` or the model's end.
        ``on_text`` gets the text as it grows (streaming; never past a stop string); when it returns
        True generation halts there (reason ``halted``: a streaming guard's veto). The stop string
        stays in the sequence (as the model's own tokens); :meth:`take_back_stop` removes it."""
        if max_tokens < 0:
            raise EngineInputError(f"max_tokens must be >= 0, got {max_tokens}")
        started, first = time.perf_counter(), None
        ids: list[int] = []
        marks: list[tuple[int, int]] = []  # (sequence length, text length) after each token
        text, shown = "", 0
        hold = max((len(s) for s in stop), default=1) - 1  # text that may be the start of a stop string
        reason: Reason = "length"
        found = before_stop = None
        while len(ids) < max_tokens:
            if self._room() <= 0:
                reason = "max_length"
                break
            token = self._next_token()
            if first is None:
                first = time.perf_counter() - started
            if token is None:
                reason = "end"
                break
            ids.append(token)
            text = self.model.decode(ids)
            marks.append((self.token_count, len(text)))
            hit = min(((text.find(s), s) for s in stop if s in text), default=None)
            if hit is not None:
                cut, found = hit
                reason = "stop"
                if on_text and cut > shown:
                    on_text(text[shown:cut])
                count, length = max(((n, length) for n, length in marks if length <= cut),
                                    default=(self.token_count - len(ids), 0))
                before_stop = (count, text[length:cut])  # the last whole token before the stop, and the rest
                text = text[:cut]
                break
            visible = len(text) - hold if stop else len(text)
            if text.endswith("\ufffd"):
                visible = min(visible, len(text) - 1)  # half a multi-byte character: wait for the rest
            if on_text and visible > shown:
                halt = on_text(text[shown:visible])
                shown = visible
                if halt:
                    reason = "halted"
                    break
        if on_text and reason not in ("stop", "halted") and len(text) > shown:
            on_text(text[shown:])
        return Generated(text, len(ids), reason, found, time.perf_counter() - started, first, before_stop)

    def take_back_stop(self, generated: Generated) -> None:
        """Remove the stop string that ended ``generated`` (its last generation) from the sequence, as
        if never written: budget forcing suppresses the end of thinking this way."""
        if generated.before_stop is None:
            raise EngineInputError(f"nothing to take back: the generation ended by {generated.reason!r}, not a stop string")
        count, rest = generated.before_stop
        self.rewind(count)
        self.append(rest)


def _bias_vector(model: LanguageModel, logit_bias: Mapping[int, float] | None) -> tuple[np.ndarray, np.ndarray] | None:
    if not logit_bias:
        return None
    ids = np.fromiter(logit_bias, dtype=np.int64)
    if ids.min() < 0 or ids.max() >= model.vocab_size:
        raise EngineInputError(f"logit_bias: token ids must lie in [0, {model.vocab_size}), got {ids.min()}..{ids.max()}")
    return ids, np.fromiter(logit_bias.values(), dtype=np.float32, count=len(ids))


class LanguageModel(abc.ABC):
    """A tokenizer and a causal LM; :meth:`session` starts a sequence."""

    name: str
    backend: str
    vocab_size: int
    context_length: int  # the most tokens a session may hold
    add_bos: bool  # prepend the tokenizer's beginning-of-sequence token to every prompt (Gemma needs it)

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens."""

    @abc.abstractmethod
    def decode(self, ids: list[int]) -> str:
        ...

    @abc.abstractmethod
    def session(self, prompt: str, max_length: int | None = None, logit_bias: Mapping[int, float] | None = None,
                json_schema: Mapping[str, Any] | None = None, sampling: Sampling = Sampling()) -> LanguageSession:
        """A session whose sequence starts with ``prompt`` and holds at most ``max_length`` tokens
        (default :data:`DEFAULT_MAX_LENGTH`; at most the model's context length).
        ``logit_bias`` is added to those tokens' logits at every step (-inf-like values ban them);
        ``json_schema`` constrains what the session generates to JSON of that schema, laid out as
        ``json.dumps`` writes it (a top-level ``x-guidance`` key in the schema overrides that)."""

    def length(self, max_length: int | None) -> int:
        if max_length is None:  # not the whole context: a KV cache is allocated for all of it up front
            return min(self.context_length, DEFAULT_MAX_LENGTH)
        if not 1 <= max_length <= self.context_length:
            raise EngineInputError(f"max_length must lie in [1, {self.context_length}] (the model's context), got {max_length}")
        return max_length

    def complete(self, prompt: str, max_tokens: int, stop: tuple[str, ...] = (),
                 on_text: Callable[[str], bool | None] | None = None, **session: Any) -> Generated:
        """One prompt, one generation (``on_text`` as in :meth:`LanguageSession.generate`)."""
        prompt_tokens = len(self.encode(prompt)) + self.add_bos
        return self.session(prompt, max_length=prompt_tokens + max_tokens, **session).generate(max_tokens, stop, on_text)


# --- onnxruntime-genai -----------------------------------------------------------------------
class OrtGenaiSession(LanguageSession):
    def __init__(self, model: OrtGenaiModel, prompt: str, max_length: int, logit_bias, json_schema, sampling: Sampling):
        super().__init__(model, logit_bias)
        og = model.og
        params = og.GeneratorParams(model.model)
        # the generator's KV cache must hold a whole sliding window (Gemma 3: 512) even for a short session
        options: dict[str, Any] = {"max_length": min(max(max_length, model.window), model.context_length),
                                   "do_sample": sampling.temperature > 0}
        if sampling.temperature > 0:
            options.update(temperature=sampling.temperature, top_p=sampling.top_p, random_seed=sampling.seed)
        params.set_search_options(**options)
        if json_schema is not None:
            params.set_guidance("json_schema", json.dumps({"x-guidance": JSON_LAYOUT, **json_schema}))
        self.max_length = max_length
        self._generator = og.Generator(model.model, params)
        prompt_ids = model.prompt_ids(prompt)
        if len(prompt_ids) >= max_length:
            raise EngineInputError(f"prompt of {len(prompt_ids)} tokens does not fit max_length {max_length}")
        self._generator.append_tokens(prompt_ids)

    @property
    def token_count(self) -> int:
        return int(self._generator.token_count())

    def _room(self) -> int:
        return self.max_length - self.token_count

    def append(self, text: str) -> None:
        ids = self.model.encode(text)
        if len(ids) > self._room():
            raise EngineInputError(f"appending {len(ids)} tokens overflows max_length {self.max_length}")
        if ids:
            self._refeed(self.token_count, ids)

    def rewind(self, token_count: int) -> None:
        self._refeed(token_count, [])

    def _refeed(self, keep: int, ids: list[int]) -> None:
        """Keep the first ``keep`` tokens, then feed ``ids``. The last kept token is fed again with
        them: onnxruntime-genai 0.18 computes a generated token's KV only at the next generation, so
        an ``append_tokens`` straight after ``generate_next_token`` (or after ``rewind_to``) leaves
        that token out of the cache and the model reads a sequence with a hole in it."""
        last = int(self._generator.get_sequence(0)[keep - 1])
        self._generator.rewind_to(keep - 1)
        self._generator.append_tokens([last, *ids])

    def _next_token(self) -> int | None:
        if self._generator.is_done():
            return None
        if self._bias is not None:
            logits = self._generator.get_logits()
            ids, values = self._bias
            logits[..., ids] += values
            self._generator.set_logits(logits)
        self._generator.generate_next_token()
        token = int(self._generator.get_next_tokens()[0])
        return None if token in self.model.eos_ids else token


class OrtGenaiModel(LanguageModel):
    """A folder written by onnxruntime-genai's model builder (``genai_config.json``, ONNX, tokenizer)."""

    backend = "onnxruntime-genai"

    def __init__(self, folder: Path, add_bos: bool = False):
        try:
            import onnxruntime_genai as og  # lazy: only language engines need it
        except ImportError:
            raise EngineError("onnxruntime-genai is not installed: pip install -e '.[language]' (PyPI has x86-64 "
                              "wheels only: on a Jetson, build it from source or use backend='transformers')") from None

        folder = Path(folder)
        if not (folder / "genai_config.json").is_file():
            raise EngineError(f"{folder}: no genai_config.json (not an onnxruntime-genai model folder)")
        self.og = og
        self.name = manifest_name(folder)
        self.model = og.Model(str(folder))
        self.tokenizer = og.Tokenizer(self.model)
        config = json.loads((folder / "genai_config.json").read_text())["model"]
        self.vocab_size = int(config["vocab_size"])
        self.context_length = int(config["context_length"])
        self.window = int(config["decoder"].get("sliding_window", {}).get("window_size", 0))
        eos = config.get("eos_token_id", [])
        self.eos_ids = frozenset(eos if isinstance(eos, list) else [eos])
        self.bos_id = config.get("bos_token_id")
        self.add_bos = add_bos

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.tokenizer.encode(text)] if text else []

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(np.asarray(ids, dtype=np.int32)) if ids else ""

    def prompt_ids(self, prompt: str) -> list[int]:
        ids = self.encode(prompt)
        if self.add_bos and (not ids or ids[0] != self.bos_id):
            ids = [int(self.bos_id), *ids]
        return ids

    def session(self, prompt: str, max_length: int | None = None, logit_bias: Mapping[int, float] | None = None,
                json_schema: Mapping[str, Any] | None = None, sampling: Sampling = Sampling()) -> OrtGenaiSession:
        return OrtGenaiSession(self, prompt, self.length(max_length), logit_bias, json_schema, sampling)


# --- transformers eager (the reference) ------------------------------------------------------
class TransformersSession(LanguageSession):
    def __init__(self, model: TransformersModel, prompt: str, max_length: int, logit_bias, sampling: Sampling):
        super().__init__(model, logit_bias)
        import torch
        from transformers import DynamicCache

        self.torch = torch
        self.max_length = max_length
        self.sampling = sampling
        self._generator = torch.Generator().manual_seed(sampling.seed)
        self._cache = DynamicCache()
        self._ids: list[int] = []
        self._logits = None
        ids = model.prompt_ids(prompt)
        if len(ids) >= max_length:
            raise EngineInputError(f"prompt of {len(ids)} tokens does not fit max_length {max_length}")
        self._feed(ids)

    def _feed(self, ids: list[int]) -> None:
        if not ids:
            return
        with self.torch.inference_mode():
            out = self.model.model(input_ids=self.torch.tensor([ids]), cache=self._cache, use_cache=True)
        self._ids.extend(ids)
        self._logits = out.logits[0, -1].float()

    @property
    def token_count(self) -> int:
        return len(self._ids)

    def _room(self) -> int:
        return self.max_length - len(self._ids)

    def append(self, text: str) -> None:
        ids = self.model.encode(text)
        if len(ids) > self._room():
            raise EngineInputError(f"appending {len(ids)} tokens overflows max_length {self.max_length}")
        self._feed(ids)

    def rewind(self, token_count: int) -> None:
        last = self._ids[token_count - 1]
        self._cache.crop(token_count - 1 - len(self._ids))  # a negative count: that many removed from the end
        del self._ids[token_count - 1:]
        self._feed([last])  # recompute the logits that followed the kept sequence

    def _next_token(self) -> int | None:
        logits = self._logits.clone()
        if self._bias is not None:
            ids, values = self._bias
            logits[ids] += self.torch.from_numpy(values)
        if self.sampling.temperature > 0:
            probs = self.torch.softmax(logits / self.sampling.temperature, dim=-1)
            ordered, order = probs.sort(descending=True)
            keep = ordered.cumsum(0) - ordered < self.sampling.top_p
            token = int(order[keep][self.torch.multinomial(ordered[keep], 1, generator=self._generator)])
        else:
            token = int(logits.argmax())
        if token in self.model.eos_ids:
            return None
        self._feed([token])
        return token


class TransformersModel(LanguageModel):
    """A transformers causal LM folder (safetensors and tokenizer), run eagerly on the CPU in fp32."""

    backend = "transformers"

    def __init__(self, folder: Path, add_bos: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: the reference backend only

        folder = Path(folder)
        self.name = manifest_name(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval()
        self.vocab_size = int(self.model.config.vocab_size)
        self.context_length = int(self.model.config.max_position_embeddings)
        eos = self.model.config.eos_token_id
        self.eos_ids = frozenset(eos if isinstance(eos, list) else [eos])
        self.bos_id = self.tokenizer.bos_token_id
        self.add_bos = add_bos

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def prompt_ids(self, prompt: str) -> list[int]:
        ids = self.encode(prompt)
        return [self.bos_id, *ids] if self.add_bos and self.bos_id is not None else ids

    def session(self, prompt: str, max_length: int | None = None, logit_bias: Mapping[int, float] | None = None,
                json_schema: Mapping[str, Any] | None = None, sampling: Sampling = Sampling()) -> TransformersSession:
        if json_schema is not None:
            raise EngineError("JSON-schema constrained generation needs the onnxruntime-genai backend")
        return TransformersSession(self, prompt, self.length(max_length), logit_bias, sampling)


MANIFEST = "edgerun_language.json"  # written by edgerun.export.language_export beside the engine


def manifest_name(folder: Path) -> str:
    """The registry name an exported folder was built as (its own name when it has no manifest)."""
    manifest = folder / MANIFEST
    return str(json.loads(manifest.read_text()).get("name", folder.name)) if manifest.is_file() else folder.name


LANGUAGE_BACKENDS = {"onnxruntime-genai": OrtGenaiModel, "transformers": TransformersModel}


def load_language_model(folder: Path, backend: str = "onnxruntime-genai", add_bos: bool | None = None) -> LanguageModel:
    """The language model in ``folder``; ``add_bos`` defaults to what its edgerun manifest says."""
    if backend not in LANGUAGE_BACKENDS:
        raise EngineError(f"unknown language backend {backend!r} (one of {', '.join(LANGUAGE_BACKENDS)})")
    if add_bos is None:
        manifest = Path(folder) / MANIFEST
        add_bos = bool(json.loads(manifest.read_text()).get("add_bos", False)) if manifest.is_file() else False
    return LANGUAGE_BACKENDS[backend](Path(folder), add_bos=add_bos)
