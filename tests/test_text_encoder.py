"""The MiniLM text encoder: ONNX export run by an engine matches sentence-transformers' embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from edgerun.engines import load
from edgerun.export.onnx_export import export_model
from edgerun.models.language.minilm import EMBED_DIM, MODEL_NAME, sentence_transformer
from edgerun.pipelines.language.text_encoder import TextEncoder

SENTENCES = [
    "the camouflaged animal",
    "a frog",
    "A small crab hiding in the sand next to a bright yellow ball.",
    "butterfly",
    "an object that is hard to see because its colour matches the background",
    "fish",
]


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    path, manifest = export_model(MODEL_NAME, tmp_path_factory.mktemp("minilm"))
    assert manifest.parity["random"]["max_abs"] < 1e-4
    return path


@pytest.fixture(scope="module")
def encoder(onnx_path):
    encoder = TextEncoder(load(onnx_path, backend="onnxruntime-cpu"))
    yield encoder
    encoder.close()


def test_onnx_embeddings_match_sentence_transformers(encoder):
    ours = encoder.encode(SENTENCES)  # one padded batch of different lengths
    reference = sentence_transformer().encode(SENTENCES, convert_to_numpy=True)
    assert ours.shape == (len(SENTENCES), EMBED_DIM) and ours.dtype == np.float32
    cosine = (ours * reference).sum(1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.9999
    assert np.abs(ours - reference).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_embedding_does_not_depend_on_the_batch_it_is_padded_in(onnx_path):
    alone = TextEncoder(load(onnx_path, backend="onnxruntime-cpu")).encode([SENTENCES[1]])
    padded = TextEncoder(load(onnx_path, backend="onnxruntime-cpu")).encode(SENTENCES)[1:2]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_related_texts_are_closer_than_unrelated_ones(encoder):
    frog, toad, ball = encoder.encode(["a frog", "a toad", "a ball"])
    assert frog @ toad > frog @ ball


def test_encode_caches_and_keeps_order(encoder):
    first = encoder.encode(["fish", "frog"])
    again = encoder.encode(["frog", "fish", "frog"])
    np.testing.assert_array_equal(again, first[[1, 0, 1]])
    assert encoder.encode([]).shape == (0, EMBED_DIM)
    with pytest.raises(TypeError, match="list of texts"):
        encoder.encode("fish")


def test_an_engine_with_another_contract_is_refused(tmp_path):
    path, _ = export_model("int-scorer", tmp_path)
    with pytest.raises(ValueError, match="missing input 'input_ids'"):
        TextEncoder(load(path, backend="onnxruntime-cpu"))
