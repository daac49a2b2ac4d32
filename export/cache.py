"""Export on first use: the one place that turns a registry name and a checkpoint into a model file.

``exported(name, checkpoint)`` answers ``MODEL_DIR/NAME/KEY/NAME.onnx``, where KEY is the
checkpoint's sha256 (or ``default`` without one: the registry entry's own weights): present and
intact (the manifest's ONNX sha256 matches the file) it is reused; otherwise the model is exported
there, parity-checked, with its manifest. A changed checkpoint is a new key, never a stale engine.
``load_exported`` does the same and loads the file as an engine. Nodes, pipelines, evaluation and
the CLI all ask these two, never ``export_model`` directly.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgerun.engines import Engine, load
from edgerun.engines.manifest import ExportManifest, default_model_dir, manifest_for
from edgerun.engines.trt_cache import sha256_file
from edgerun.errors import EngineError
from edgerun.export.onnx_export import export_model

log = logging.getLogger(__name__)


def cache_key(checkpoint: str | None) -> str:
    return sha256_file(Path(checkpoint))[:16] if checkpoint else "default"


def cached(name: str, checkpoint: str | None, model_dir: Path | None = None) -> Path | None:
    """The cached export of ``name`` from ``checkpoint`` if it is there and intact, else None."""
    onnx_path = (model_dir or default_model_dir()) / name / cache_key(checkpoint) / f"{name}.onnx"
    manifest_path = manifest_for(onnx_path)
    if not onnx_path.is_file() or not manifest_path.is_file():
        return None
    try:
        manifest = ExportManifest.load(manifest_path)
    except EngineError as exc:
        log.warning("ignoring the cached %s: unreadable manifest %s (%s)", name, manifest_path, exc)
        return None
    if manifest.onnx_sha256 != sha256_file(onnx_path):
        log.warning("ignoring the cached %s: %s does not match its manifest's sha256", name, onnx_path)
        return None
    return onnx_path


def exported(name: str, checkpoint: str | None = None, model_dir: Path | None = None) -> Path:
    """The ONNX file of registry model ``name`` exported from ``checkpoint``: cached, or exported now."""
    hit = cached(name, checkpoint, model_dir)
    if hit is not None:
        log.info("%s: cached export %s", name, hit)
        return hit
    out_dir = (model_dir or default_model_dir()) / name / cache_key(checkpoint)
    onnx_path, manifest = export_model(name, out_dir, checkpoint)
    log.info("%s: exported to %s (parity max abs error %.2g)", name, onnx_path, manifest.parity.get("random", {}).get("max_abs", float("nan")))
    return onnx_path


def load_exported(name: str, checkpoint: str | Path | None = None, backend: str = "auto", model_dir: Path | None = None,
                  **options) -> Engine:
    """Registry model ``name`` exported from ``checkpoint`` (cached, or exported now), as an engine of ``backend``."""
    return load(exported(name, str(checkpoint) if checkpoint else None, model_dir), backend, **options)
