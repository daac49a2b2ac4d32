"""Engines and export on the CPU: backends agree, manifests and cache keys, clear errors; TensorRT skips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import RunningGraph
from fixture_nodes import seeded_images

from edgerun.calibration.int8 import calibration_batches
from edgerun.engines import EngineError, TensorSpec, auto_backend, load, loader
from edgerun.engines.base import check_inputs
from edgerun.engines.manifest import ExportManifest, manifest_for
from edgerun.engines.trt_cache import (
    EngineFileManifest,
    Machine,
    cache_key,
    engine_file_path,
    find_engine_file,
    manifest_path,
    mismatches,
    sha256_file,
)
from edgerun.errors import EngineInputError, ExportError, Int8CalibrationError
from edgerun.export.onnx_export import export_model
from edgerun.runtime import messages
from edgerun.runtime.recording import McapRecorder

MACHINE = Machine("10.3.0", "Orin", "8.7")


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    path, _ = export_model("dinov2-tiny", tmp_path_factory.mktemp("export"))
    return path


def test_onnx_runtime_and_torch_agree_on_a_dinov2_shaped_vit(tiny_onnx):
    ort_engine, torch_engine = load(tiny_onnx, "onnxruntime-cpu"), load(tiny_onnx, "torch")
    images = np.random.default_rng(1).uniform(-1, 1, (3, 3, 56, 56)).astype(np.float32)
    ours, reference = ort_engine(images=images)["tokens"], torch_engine(images=images)["tokens"]
    assert ours.shape == reference.shape == (3, 16, 64)
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=1e-4)
    assert not np.allclose(ours[0], ours[1])  # different images, different tokens


def test_export_manifest_records_specs_dims_parity_and_hash(tiny_onnx):
    manifest = ExportManifest.load(manifest_for(tiny_onnx))
    assert manifest.onnx_sha256 == sha256_file(tiny_onnx)
    assert manifest.opset >= 17
    assert manifest.inputs == [TensorSpec("images", "float32", ("batch", 3, 56, 56))]
    assert manifest.outputs == [TensorSpec("tokens", "float32", ("batch", 16, 64))]
    assert manifest.profiles() == {"images": {"min": [1, 3, 56, 56], "opt": [1, 3, 56, 56], "max": [64, 3, 56, 56]}}
    assert 0 < manifest.parity["random"]["max_abs"] < 1e-4
    assert manifest.source["factory"] == "edgerun.export.registry:build_model"


def test_export_above_tolerance_fails_and_leaves_no_model(tmp_path):
    with pytest.raises(ExportError, match=r"differs from torch on random inputs: max abs error .* \(tolerance 0\)"):
        export_model("dinov2-tiny", tmp_path, tolerance=(0.0, 0.0))
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("*.json"))


def test_export_checks_parity_on_recorded_inputs(tmp_path):
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    np.savez(recorded / "a.npz", images=seeded_images(1))
    _, manifest = export_model("dinov2-tiny", tmp_path / "out", recorded=[recorded])
    assert manifest.parity["recorded"]["sets"] == 1 and manifest.parity["recorded"]["max_abs"] < 1e-4
    np.savez(recorded / "b.npz", pixels=seeded_images(2))
    with pytest.raises(ExportError, match=r"b.npz: missing images \(has pixels\)"):
        export_model("dinov2-tiny", tmp_path / "out2", recorded=[recorded])


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"images": np.zeros((1, 3, 56, 56), np.float64)}, "input 'images': expected float32 (batch, 3, 56, 56), got float64 (1, 3, 56, 56)"),
        ({"images": np.zeros((3, 56, 56), np.float32)}, "got float32 (3, 56, 56) (rank 3 instead of 4)"),
        ({"images": np.zeros((1, 3, 64, 64), np.float32)}, "(axis 2 must be 56)"),
        ({}, "missing input images: float32 (batch, 3, 56, 56)"),
        ({"images": np.zeros((1, 3, 56, 56), np.float32), "extra": np.zeros(1)}, "unknown input 'extra' (inputs: images)"),
    ],
)
def test_bad_inputs_get_a_clear_error_naming_the_input(tiny_onnx, arrays, message):
    engine = load(tiny_onnx, "onnxruntime-cpu")
    with pytest.raises(EngineInputError) as error:
        engine(**arrays)
    assert message in str(error.value)


def test_dynamic_dimension_must_agree_across_inputs():
    specs = [TensorSpec("obs", "float32", ("batch", 4)), TensorSpec("actions", "float32", ("batch", "horizon", 2))]
    assert check_inputs("m", specs, {"obs": np.zeros((3, 4), np.float32), "actions": np.zeros((3, 5, 2), np.float32)}) == {
        "batch": 3, "horizon": 5,
    }
    with pytest.raises(EngineInputError, match="dimension 'batch' is 3 in another input"):
        check_inputs("m", specs, {"obs": np.zeros((3, 4), np.float32), "actions": np.zeros((2, 5, 2), np.float32)})


def test_auto_backend_on_a_machine_without_gpu_is_onnxruntime_cpu(tiny_onnx, caplog):
    assert auto_backend() == "onnxruntime-cpu"
    with caplog.at_level("INFO", logger="edgerun.engines"):
        engine = load(tiny_onnx)
    assert engine.backend == "onnxruntime-cpu"
    assert "backend for dinov2-tiny.onnx: onnxruntime-cpu (auto)" in caplog.text


def test_unknown_backend_and_missing_files_are_clear_errors(tiny_onnx, tmp_path):
    with pytest.raises(EngineError, match="unknown backend 'tensorflow'"):
        load(tiny_onnx, "tensorflow")
    with pytest.raises(EngineError, match="no model file at"):
        load(tmp_path / "nope.onnx")
    with pytest.raises(EngineError, match="needs TensorRT, cuda-python and a CUDA GPU"):
        load(tiny_onnx, "tensorrt")


def test_torch_backend_only_runs_edgerun_factories(tiny_onnx, tmp_path):
    hostile = tmp_path / "hostile.onnx"
    hostile.write_bytes(tiny_onnx.read_bytes())
    data = json.loads(manifest_for(tiny_onnx).read_text())
    data["source"]["factory"] = "os:system"
    manifest_for(hostile).write_text(json.dumps(data))
    with pytest.raises(EngineError, match="names factory 'os:system'; only edgerun's own factories load"):
        load(hostile, "torch")


def test_cache_key_changes_with_every_field_and_only_then():
    profiles = {"images": {"min": [1, 3, 56, 56], "opt": [1, 3, 56, 56], "max": [8, 3, 56, 56]}}
    base = cache_key("abc", "fp16", profiles, MACHINE)
    assert cache_key("abc", "fp16", json.loads(json.dumps(profiles)), Machine("10.3.0", "Orin", "8.7")) == base
    variants = [
        cache_key("abd", "fp16", profiles, MACHINE),
        cache_key("abc", "fp32", profiles, MACHINE),
        cache_key("abc", "fp16", {"images": {**profiles["images"], "max": [16, 3, 56, 56]}}, MACHINE),
        cache_key("abc", "fp16", profiles, Machine("10.4.0", "Orin", "8.7")),
        cache_key("abc", "fp16", profiles, Machine("10.3.0", "RTX 4090", "8.9")),
        cache_key("abc", "fp16", profiles, MACHINE, calibration_sha256="ff"),
    ]
    assert len({base, *variants}) == 7
    with pytest.raises(ValueError, match="precision 'fp8' is not one of"):
        cache_key("abc", "fp8", profiles, MACHINE)


def test_cached_engine_file_is_found_only_for_the_same_key(tiny_onnx, tmp_path):
    onnx_path = tmp_path / tiny_onnx.name
    onnx_path.write_bytes(tiny_onnx.read_bytes())
    profiles = ExportManifest.load(manifest_for(tiny_onnx)).profiles()
    assert find_engine_file(onnx_path, "fp16", profiles, MACHINE) is None
    key = cache_key(sha256_file(onnx_path), "fp16", profiles, MACHINE)
    engine_file = engine_file_path(onnx_path, "fp16", key)
    engine_file.write_bytes(b"engine")
    EngineFileManifest(sha256_file(onnx_path), "fp16", profiles, MACHINE).save(manifest_path(engine_file))
    assert engine_file.name.startswith("dinov2-tiny.fp16.") and engine_file.parent == tmp_path  # cached next to the model
    assert find_engine_file(onnx_path, "fp16", profiles, MACHINE) == engine_file
    assert find_engine_file(onnx_path, "fp32", profiles, MACHINE) is None
    assert find_engine_file(onnx_path, "fp16", profiles, Machine("10.3.0", "Orin Nano", "8.7")) is None


def test_plan_built_for_another_machine_is_refused_with_the_reason(tmp_path, monkeypatch):
    engine_file = tmp_path / "model.fp16.0123.engine"
    engine_file.write_bytes(b"not for this machine")
    EngineFileManifest("abc", "fp16", {}, Machine("10.0.1", "RTX 4090", "8.9")).save(manifest_path(engine_file))
    monkeypatch.setattr(loader, "gpu_machine", lambda: MACHINE)
    with pytest.raises(EngineError) as error:
        load(engine_file)
    text = str(error.value)
    assert "built with TensorRT 10.0.1, this machine has 10.3.0" in text
    assert "built for GPU 'RTX 4090', this machine has 'Orin'" in text
    assert "built for compute capability 8.9, this GPU is 8.7" in text
    assert "edgerun build MODEL.onnx --fp16" in text
    assert mismatches(EngineFileManifest("abc", "fp16", {}, MACHINE), MACHINE) == []


def test_plan_without_manifest_is_refused(tmp_path, monkeypatch):
    engine_file = tmp_path / "model.engine"
    engine_file.write_bytes(b"?")
    monkeypatch.setattr(loader, "gpu_machine", lambda: MACHINE)
    with pytest.raises(EngineError, match="it has no manifest model.engine.json"):
        load(engine_file)


def test_int8_calibration_batches_from_npz_and_mcap(tmp_path):
    specs = [TensorSpec("images", "float32", ("batch", 3, 56, 56))]
    npz_dir = tmp_path / "npz"
    npz_dir.mkdir()
    for i in range(5):
        np.savez(npz_dir / f"{i}.npz", images=seeded_images(i))
    batches = calibration_batches(npz_dir, specs, batch_size=2)
    assert len(batches) == 2 and batches[0]["images"].shape == (2, 3, 56, 56)
    np.testing.assert_array_equal(batches[1]["images"][1], seeded_images(3)[0])

    recording = tmp_path / "inputs.mcap"
    recorder = McapRecorder(recording)
    for i in range(4):
        recorder.write(messages.Message("camera/images", i, 0, 0, "camera", arrays={"images": seeded_images(i)}))
    recorder.close()
    from_mcap = calibration_batches(recording, specs, batch_size=4)
    assert len(from_mcap) == 1
    np.testing.assert_array_equal(from_mcap[0]["images"][2], seeded_images(2)[0])

    with pytest.raises(Int8CalibrationError, match="has no topic 'camera/frames'"):
        calibration_batches(recording, specs, 4, topic="camera/frames")
    with pytest.raises(Int8CalibrationError, match="fewer samples than one batch of 8"):
        calibration_batches(npz_dir, specs, batch_size=8)
    np.savez(npz_dir / "9.npz", images=np.zeros((3, 32, 32), np.float32))
    with pytest.raises(Int8CalibrationError, match=r"9.npz: input 'images' has shape \(1, 3, 32, 32\)"):
        calibration_batches(npz_dir, specs, batch_size=2)


def test_inference_node_runs_an_engine_on_messages(tiny_onnx, tmp_path):
    graph = f"""
    name: infer
    nodes:
      - {{id: source, class: "fixture_nodes:ImageSource"}}
      - id: encoder
        class: edgerun.nodes.inference:Inference
        params: {{model: "{tiny_onnx}", backend: onnxruntime-cpu, fields: {{images: pixels}}}}
        inputs: {{inputs: source/images}}
    """
    reference = load(tiny_onnx, "torch")
    with RunningGraph(tmp_path, graph) as running:
        source_socket = running.subscribe("source/images")
        assert source_socket.poll(5000)  # subscribed: every input from now on is seen
        outputs = running.collect("encoder/outputs", 5)
        sources = {m.capture_ns: m["count"] for m in running.collect("source/images", 15, socket=source_socket)}
    matched = [out for out in outputs if out.capture_ns in sources]  # capture time travels through the node
    assert len(matched) >= 3, "outputs must carry the capture time of the input they came from"
    for out in matched:
        assert out["tokens"].shape == (1, 16, 64) and out["inference_ms"] > 0
        expected = reference(images=seeded_images(sources[out.capture_ns]))["tokens"]
        np.testing.assert_allclose(out["tokens"], expected, atol=1e-4)


@pytest.mark.skipif(loader.gpu_machine() is None, reason="TensorRT tests need tensorrt, cuda-python and a CUDA GPU")
def test_tensorrt_engine_file_matches_onnx_runtime_and_is_cached(tiny_onnx):
    from edgerun.export.trt_build import build_engine

    engine_file = build_engine(tiny_onnx, "fp32")
    built_at = engine_file.stat().st_mtime_ns
    assert build_engine(tiny_onnx, "fp32") == engine_file and engine_file.stat().st_mtime_ns == built_at  # cache hit, no rebuild
    images = seeded_images(7)
    ours = load(tiny_onnx, "tensorrt", precision="fp32")(images=images)["tokens"]
    np.testing.assert_allclose(ours, load(tiny_onnx, "onnxruntime-cpu")(images=images)["tokens"], atol=1e-3)


def test_dino_wm_planning_cost_runs_through_onnx_runtime_for_cem(tmp_path):
    from edgerun.pipelines.dino_wm.plan import CEMConfig, cem_plan

    path, manifest = export_model("dino-wm-wall-small", tmp_path)
    assert manifest.inputs[0] == TensorSpec("actions", "float32", ("samples", 5, 10))
    ort_engine, torch_engine = load(path, "onnxruntime-cpu"), load(path, "torch")
    rng = np.random.default_rng(0)
    context = {s.name: rng.normal(size=s.shape).astype(np.float32) for s in manifest.inputs[1:]}
    actions = rng.normal(size=(300, 5, 10)).astype(np.float32)
    np.testing.assert_allclose(ort_engine(actions=actions, **context)["cost"], torch_engine(actions=actions, **context)["cost"], atol=1e-4)

    def cost(engine):
        return lambda a: engine(actions=a, **context)["cost"]

    config = CEMConfig(horizon=5, samples=300, topk=30, iterations=3, seed=1)
    ours = cem_plan(cost(ort_engine), 10, config, as_numpy=True)
    reference = cem_plan(cost(torch_engine), 10, config, as_numpy=True)
    np.testing.assert_allclose(ours.actions, reference.actions, atol=1e-3)  # same plan from either backend
