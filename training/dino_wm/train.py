"""Train DINO-WM (arXiv 2411.04983) on a CPU: an offline-pretrained encoder, frozen, then the predictor.

Three stages, each resumable from files in ``out/``:

1. **Data.** An offline dataset in the ``envs.collect`` layout (v1): given, or collected here with the
   ``mixed`` policy (the expert plus noise plus random steps, so door crossings and off-expert actions
   are both in it).
2. **Encoder.** DINO-WM freezes a pretrained DINOv2 ViT-S/14. Those weights cannot be downloaded here,
   so this stage builds an encoder that can be had offline: a small ViT with exactly the DINOv2
   architecture and parameter names (:class:`~.encoder.DinoV2Encoder`, :data:`WALL_CPU_ENCODER`: patch 8
   at 64 x 64, so 8 x 8 = 64 patch tokens of 64 channels), pretrained *self-supervised* on the env's own
   frames as a **masked denoising autoencoder**: 25 % of the patch tokens are replaced by DINOv2's
   ``mask_token`` (iBOT-style masking, which is what that parameter is for) and every patch of the clean
   image is reconstructed from its own output token by a small per-token MLP. Why this objective:

   - it needs no labels, no proprio and no rewards (the latent stays a property of the pixels, as DINO's);
   - the per-token decoder makes each token describe *its own* patch, so the 3-pixel dot's sub-patch
     position survives in the token that holds it; the planning cost compares latents patch by patch,
     which is exactly what that needs. An MAE (loss on masked patches only) would teach the encoder to
     ignore the dot: its position in a masked patch cannot be inferred from the others;
   - the masked tokens force some context into the features (the wall continues, where the door is),
     DINO-like, without the multi-crop / teacher machinery a 64 x 64 toy does not need.

   After pretraining the encoder is frozen (``requires_grad_(False)``, eval mode) and never changes again.
   Users with the official ``dinov2_vits14`` weights keep the paper's path: build the model from
   :data:`~.config.PAPER_WALL` and load the hub state dict with ``encoder.load_official_state_dict`` (or
   convert an official DINO-WM checkpoint with ``edgerun convert dino-wm``); stage 2 is then skipped by
   passing ``TrainConfig(encoder_state_dict=...)``.
3. **Predictor.** Latents of every frame are computed once with the frozen encoder (the encoder is the
   expensive part and never changes). The predictor, the action encoder and the proprio encoder are then
   trained with DINO-WM's objective: teacher-forced latent MSE over windows of ``H + 1`` frames spaced by
   ``frameskip`` (5) env steps, each frame's action being its ``frameskip`` env actions concatenated;
   targets detached; the loss covers the visual and proprio dims, not the action dims
   (:meth:`~.world_model.DinoWorldModel.training_loss`, here on precomputed latents).

Normalisation: actions are normalised per dimension with the dataset's mean and std (the planner works
in that space; the statistics go into the checkpoint's ``extra``). Proprio is normalised the same way
for training, and the normalisation is then folded into the proprio encoder's linear map, so the
shipped model takes the env's raw proprio (the dot's ``(x, y)``).

Outputs, beside the final checkpoint ``out/model.pt`` (``checkpoint.save_checkpoint``, encoder included):
``loss_curve.png`` and ``manifest.json`` (command, seed, data path + sha256 + episodes, steps, final losses,
metrics, the checkpoint's sha256, created_at). Resumable state: ``out/encoder-latest.pt`` and
``out/ckpt-latest.pt`` (model + optimizer + step + loss history, plain tensors and primitives, readable
with ``torch.load(weights_only=True)``), written every ``checkpoint_every`` steps and at the end of a stage.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgerun.evaluation.dino_wm.evaluate import evaluate
from edgerun.models.dino_wm.checkpoint import save_checkpoint
from edgerun.pipelines.dino_wm.free_space import FILE_NAME as FREE_SPACE_FILE
from edgerun.training.dino_wm.config import RECIPES, TrainConfig
from edgerun.training.dino_wm.data import load_training_data
from edgerun.training.dino_wm.free_space import free_space_of
from edgerun.training.dino_wm.encoder_pretraining import encode_frames, pretrain_encoder, probe_position
from edgerun.training.dino_wm.init_from import InitWeights, read_init, stage_summary
from edgerun.training.dino_wm.predictor import fold_proprio_normalisation, train_predictor
from edgerun.training.kit import (
    Curve,
    Panel,
    TrainResult,
    manifest_header,
    plot_curves,
    refuse_unless_resuming,
    tail_mean,
    torch_threads,
    write_manifest,
)

MANIFEST_FORMAT = "edgerun.dino_wm.manifest"
STATE_FILES = ("encoder-latest.pt", "ckpt-latest.pt")


def plot_losses(
    path: Path, encoder_losses: list[float], history: dict[str, list[float]], val_history: list[list[float]],
    rollout_blocks: int = 1,
) -> Path:
    """Two panels, log scale: the encoder's reconstruction loss, the predictor's losses (train and val)."""
    loss_kind = "teacher-forced" if rollout_blocks == 1 else f"{rollout_blocks}-block open-loop rollout"
    predictor = [Curve(f"train {key}", history.get(key, []), smooth=50, colour=colour)
                 for key, colour in (("loss", "C0"), ("visual", "C1"), ("proprio", "C2"))]  # fmt: skip
    predictor.append(Curve("val loss", [row[1] for row in val_history], [row[0] for row in val_history], style="o--", colour="C3"))
    return plot_curves(path, [
        Panel("encoder: masked denoising autoencoder", [Curve("pixel MSE (50-step mean)", encoder_losses, smooth=50, faint=True)]),
        Panel(f"predictor: {loss_kind} latent MSE", predictor),
    ])  # fmt: skip


def _encoder_source(config: TrainConfig, init: InitWeights | None) -> str:
    if init is not None and init.from_model:
        return f"{init.encoder_pretraining or 'frozen encoder'} (taken from {init.path})"
    if config.encoder_state_dict:
        return f"official weights {config.encoder_state_dict}"
    return "masked denoising autoencoder on the env's frames (self-supervised), then frozen"


def train(config: TrainConfig, progress: bool = True) -> TrainResult:
    """Run (or resume) all stages; write ``model.pt``, ``loss_curve.png`` and ``manifest.json`` in ``config.out``."""
    with torch_threads(config.threads):
        return _train(config, progress)


def _train(config: TrainConfig, progress: bool) -> TrainResult:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    run_started = time.perf_counter()

    init = read_init(config)  # before the data: a bad file must not cost a collection first
    started = time.perf_counter()
    data = load_training_data(config, out, progress)
    timings["data_s"] = time.perf_counter() - started

    if init is not None and init.from_model:  # its frozen encoder, as is
        encoder, encoder_log = init.model.encoder.requires_grad_(False).eval(), {"losses": [], "seconds": 0.0}
    else:
        encoder, encoder_log = pretrain_encoder(config, data, out, progress)
    timings["encoder_s"] = encoder_log["seconds"]

    started = time.perf_counter()
    latents = encode_frames(encoder, data.frames, progress=progress)
    timings["latents_s"] = time.perf_counter() - started
    extent = RECIPES[config.env].frame_extent if config.env in RECIPES else 1.0
    probe = probe_position(latents, data.proprio[..., :2], data.train_episodes, data.val_episodes)

    model, log = train_predictor(config, data, encoder, latents, out, progress, init)
    timings["predictor_s"] = log["seconds"]
    fold_proprio_normalisation(model, log["proprio_mean"], log["proprio_std"])

    steps = {"encoder": len(encoder_log["losses"]), "predictor": len(log["history"]["loss"])}
    extra = {
        "env": config.env,
        "frameskip": config.model.predictor.frameskip,
        "action_mean": log["action_mean"].tolist(),
        "action_std": log["action_std"].tolist(),
        "proprio_input": "raw (dataset normalisation folded into proprio_encoder)",
        "encoder_pretraining": _encoder_source(config, init),
        "steps": steps,
        "seed": config.seed,
        "data_sha256": [f["sha256"] for f in data.info["files"]],
    }  # fmt: skip
    checkpoint = save_checkpoint(out / "model.pt", model, extra=extra, include_encoder=True)
    if config.env in RECIPES:  # the free-space objective's map, from the positions the model trained on
        free_space_of(config.env, data.proprio).save(out / FREE_SPACE_FILE)
    curve = plot_losses(out / "loss_curve.png", encoder_log["losses"], log["history"], log["val_history"], config.rollout_blocks)

    val = log["val_history"][-1] if log["val_history"] else None
    timings["this_call_s"] = time.perf_counter() - run_started  # all stages run by this call (not resumed parts)
    metrics: dict[str, Any] = {
        "encoder_probe_rmse": probe["rmse"],
        "encoder_probe_rmse_px": None if probe["rmse"] is None else probe["rmse"] * data.frames.shape[2] / extent,
        "encoder_probe_r2": probe["r2"],
    }
    parameters = {part: sum(t.numel() for t in getattr(model, part).parameters())
                  for part in ("encoder", "predictor", "action_encoder", "proprio_encoder")}  # fmt: skip
    manifest = {
        **manifest_header(MANIFEST_FORMAT, config.command or " ".join(sys.argv), config.seed, checkpoint, curve,
                          parameters=parameters),
        "env": config.env,
        "data": data.info,
        "steps": steps,
        "final_losses": {
            "encoder_pixel_mse": tail_mean(encoder_log["losses"]) if encoder_log["losses"] else None,
            "train": {key: tail_mean(values) for key, values in log["history"].items()},
            "val": None if val is None else {"loss": val[1], "visual": val[2], "proprio": val[3]},
        },
        "metrics": metrics,
        "timings_s": timings,
        "model_config": config.model.to_dict(),
        "train_config": config.to_dict(),
    }
    if config.eval_episodes > 0:
        metrics["eval"] = evaluate(checkpoint, config.env, config.eval_episodes, config.seed, progress=progress)
    manifest["training_history"] = [*(init.history if init else ()), stage_summary(manifest)]
    manifest_path = write_manifest(out / "manifest.json", manifest)
    return TrainResult(checkpoint=checkpoint, manifest=manifest_path, loss_curve=curve, manifest_data=manifest)


def train_main(env: str, out: str, steps: int | None, resume: bool, seed: int, rollout_blocks: int = 1,
               init_from: str | None = None) -> int:  # fmt: skip
    """``edgerun train dino-wm --env ENV [--out DIR] [--steps N] [--resume] [--seed S] [--rollout-blocks K]
    [--init-from STATE]``.

    ``steps`` sets the predictor's steps (the encoder's stay at the default). Without ``resume`` an
    ``out`` that already holds resumable state is refused (nothing is overwritten). Returns 0, or 2
    after printing ``edgerun train dino-wm: <error>``.
    """
    try:
        config = TrainConfig.for_env(env, out=out, seed=seed, rollout_blocks=rollout_blocks, init_from=init_from,
                                     command=" ".join(["edgerun", *sys.argv[1:]]))  # fmt: skip
    except ValueError as error:
        print(f"edgerun train dino-wm: {error}", file=sys.stderr)
        return 2
    if steps is not None:
        if steps < 1:
            print(f"edgerun train dino-wm: --steps must be >= 1, got {steps}", file=sys.stderr)
            return 2
        config = replace(config, predictor_steps=steps)
    try:
        refuse_unless_resuming(Path(out), STATE_FILES, resume)
        result = train(config, progress=True)
    except (ValueError, FileNotFoundError) as error:
        print(f"edgerun train dino-wm: {error}", file=sys.stderr)
        return 2
    m = result.manifest_data
    print(f"wrote {result.checkpoint} ({m['checkpoint']['bytes'] / 2**20:.1f} MiB), {result.loss_curve}, {result.manifest}")
    print(f"  steps: encoder {m['steps']['encoder']}, predictor {m['steps']['predictor']}; final train loss "
          f"{m['final_losses']['train']['loss']:.5f}; position from the frozen latent: "
          f"{m['metrics']['encoder_probe_rmse_px'] or float('nan'):.2f} px RMSE")  # fmt: skip
    return 0
