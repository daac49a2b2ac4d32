"""Train TracksTo4D on synthetic scenes: the paper's unsupervised losses (:mod:`.losses`) plus, unless
``supervision_weight`` is 0, an auxiliary ground-truth term (:mod:`.supervision`) that makes the small
model learn cameras within a CPU budget.

Each step draws a fresh batch (scene i of step s from ``default_rng([seed, s, i])``), so training is
reproducible and resumable from ``train_state.pt`` (model, optimizer, step, history) and never sees
the held-out scenes (:data:`HELD_OUT_SEED`, drawn by :func:`.synthetic.generate_split`). Training
starts with the released camera warm-up (every camera to a canonical pose, until that loss is below
1e-4 or ``camera_warmup_steps`` pass), then minimises the reconstruction loss; after ``clamp_after``
steps a batch whose loss is above 100 is clamped (no gradient: skipped), as released.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edgerun.evaluation.tracks_to_4d.evaluate import evaluate_scenes
from edgerun.models.tracks_to_4d.checkpoint import load_checkpoint, save_checkpoint
from edgerun.models.tracks_to_4d.config import SMALL, TracksTo4DConfig
from edgerun.models.tracks_to_4d.intrinsics import normalize_tracks
from edgerun.models.tracks_to_4d.losses import camera_warmup_loss, reconstruction_losses
from edgerun.models.tracks_to_4d.network import TracksTo4D
from edgerun.sim.point_scenes import FAMILIES, HELD_OUT_SEED, TRAIN_FAMILIES, SceneConfig, family_config, generate_scene, generate_split
from edgerun.training import kit
from edgerun.training.tracks_to_4d.supervision import Targets, batch_targets, supervised_loss

STATE_FILE = "train_state.pt"
STATE_FORMAT = "edgerun.tracks_to_4d.train_state"
MANIFEST_FORMAT = "edgerun.tracks_to_4d.manifest"
_PROGRESS = ("step", "warmup_done", "history", "evals", "elapsed_s")
LOSS_CLAMP = 100.0
WARMUP_DONE_BELOW = 1e-4


@dataclass(frozen=True)
class TrainConfig:
    out: str = "out/tracks_to_4d"
    model: TracksTo4DConfig = SMALL
    scene: SceneConfig = field(default_factory=lambda: SceneConfig(points=100))
    families: tuple[str, ...] = ()  # draw each scene from one of these scene families (its points from `scene`); () = `scene` only
    frames: tuple[int, int] = (20, 20)  # window length T drawn per step (inclusive), when training on families
    init_from: str = ""  # start from this checkpoint's weights (its camera warm-up is not run again)
    steps: int = 2000
    batch: int = 4
    lr: float = 3e-4
    lr_warmup_steps: int = 50
    grad_clip: float = 1.0
    camera_warmup_steps: int = 300
    clamp_after: int = 200  # reconstruction steps before losses above 100 are clamped (skipped), as released
    supervision_weight: float = 1.0  # the auxiliary ground-truth term (supervision.py); 0 = the paper's unsupervised training
    supervised_from: int = 0  # the step from which that term is added
    seed: int = 0
    checkpoint_every: int = 100
    eval_every: int = 250
    eval_scenes: int = 8  # held-out scenes for the periodic check
    final_eval_scenes: int = 50  # held-out scenes for the manifest, at the shipped N = 225
    threads: int = 1
    command: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def training_batch(seed: int, step: int, batch: int, scene: SceneConfig, families: tuple[str, ...] = (), frames: tuple[int, int] = (20, 20)) -> tuple[torch.Tensor, Targets]:
    """(batch, N, 3, T) normalised tracks of step ``step`` (true K applied) and their ground truth.
    With ``families``, the step's T is drawn from ``frames`` and each scene from a family drawn
    with it (from ``default_rng([seed, step, i])`` too; T from ``default_rng([seed, step, batch])``)."""
    if not families:
        scenes = [generate_scene(np.random.default_rng([seed, step, i]), scene) for i in range(batch)]
    else:
        length = int(np.random.default_rng([seed, step, batch]).integers(frames[0], frames[1] + 1))
        scenes = []
        for i in range(batch):
            rng = np.random.default_rng([seed, step, i])
            family = families[int(rng.integers(len(families)))]
            scenes.append(generate_scene(rng, family_config(family, points=scene.points, frames=length)))
    return torch.from_numpy(np.stack([normalize_tracks(s.tracks, s.K)[0] for s in scenes])), batch_targets(scenes)


def _new_state(config: TrainConfig) -> dict:
    torch.manual_seed(config.seed)
    model = TracksTo4D(config.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return {"model": model, "optimizer": optimizer, "step": 0, "warmup_done": False, "history": [], "evals": [], "elapsed_s": 0.0}


def _save_state(path: Path, state: dict, config: TrainConfig) -> None:
    kit.save_state(path, STATE_FORMAT, {
        "model_config": json.loads(json.dumps(config.model.to_dict())), "model": state["model"].state_dict(),
        "optimizer": state["optimizer"].state_dict(), **{key: state[key] for key in _PROGRESS},
    })  # fmt: skip


def _load_state(path: Path, config: TrainConfig) -> dict:
    saved = kit.load_state(path, STATE_FORMAT, expect={"model_config": json.loads(json.dumps(config.model.to_dict()))})
    state = _new_state(config)
    if saved is not None:
        state["model"].load_state_dict(saved["model"])
        state["optimizer"].load_state_dict(saved["optimizer"])
        state.update({key: saved[key] for key in _PROGRESS})
    return state


def train_step(state: dict, config: TrainConfig, tracks: torch.Tensor, targets: Targets | None = None) -> dict[str, float]:
    """One optimiser step on ``tracks``; the camera warm-up until it is done, then the reconstruction
    loss, plus ``supervision_weight`` x the ground-truth term from step ``supervised_from`` on."""
    model, optimizer = state["model"], state["optimizer"]
    model.train()
    kit.set_lr(optimizer, kit.warmup_cosine(state["step"], config.steps, config.lr, config.lr_warmup_steps, floor=1.0))
    out = model(tracks)
    if state["warmup_done"]:
        terms = reconstruction_losses(out, tracks, config.model)
        reconstruction_steps = sum(1 for r in state["history"] if r["phase"] == "reconstruction")
        loss = terms["total"].clamp(max=LOSS_CLAMP) if reconstruction_steps >= config.clamp_after else terms["total"]
        if targets is not None and config.supervision_weight and state["step"] >= config.supervised_from:
            terms["supervised"] = supervised_loss(out, targets)
            loss = loss + config.supervision_weight * terms["supervised"]
        phase = "reconstruction"
    else:
        loss = camera_warmup_loss(out)
        terms = {"total": loss}
        phase = "camera_warmup"
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    if not state["warmup_done"] and (loss.item() < WARMUP_DONE_BELOW or state["step"] + 1 >= config.camera_warmup_steps):
        state["warmup_done"] = True
    record = {"step": state["step"], "phase": phase, **{key: float(value.detach()) for key, value in terms.items()}}
    state["history"].append(record)
    state["step"] += 1
    return record


def train(config: TrainConfig, progress: bool = True, resume: bool = False) -> kit.TrainResult:
    """Train (or resume) to ``config.steps``, then evaluate on held-out scenes and write
    ``model.pt``, ``manifest.json`` and ``loss_curve.png`` under ``config.out``."""
    with kit.torch_threads(config.threads):
        return _train(config, progress, resume)


def _train(config: TrainConfig, progress: bool, resume: bool) -> kit.TrainResult:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    kit.refuse_unless_resuming(out, [STATE_FILE], resume)
    state = _load_state(state_path, config)
    if config.init_from and state["step"] == 0:
        initial, initial_config, _ = load_checkpoint(config.init_from)
        if initial_config != config.model:
            raise ValueError(f"{config.init_from}: its model config differs from the one being trained ({initial_config} vs {config.model})")
        state["model"].load_state_dict(initial.state_dict())
        state["warmup_done"] = True
    check_scenes = generate_split(HELD_OUT_SEED, config.eval_scenes, replace(config.scene, points=225))
    bar = tqdm(total=config.steps, initial=min(state["step"], config.steps), disable=not progress, desc="tracks-to-4d", unit="step")
    started = time.perf_counter() - state["elapsed_s"]
    while state["step"] < config.steps:
        record = train_step(state, config, *training_batch(config.seed, state["step"], config.batch, config.scene, config.families, config.frames))
        bar.update(1)
        bar.set_postfix(phase=record["phase"][:6], loss=f"{record['total']:.3f}", rep=f"{record.get('reprojection', float('nan')):.4f}")
        state["elapsed_s"] = time.perf_counter() - started
        if state["step"] % config.eval_every == 0 or state["step"] == config.steps:
            state["evals"].append({"step": state["step"], **evaluate_scenes(state["model"], check_scenes)})
        if state["step"] % config.checkpoint_every == 0 or state["step"] == config.steps:
            _save_state(state_path, state, config)
    bar.close()
    return _finish(config, state)


def _finish(config: TrainConfig, state: dict) -> kit.TrainResult:
    out = Path(config.out)
    model = state["model"].eval()
    held_out_config = replace(config.scene, points=225)
    metrics = evaluate_scenes(model, generate_split(HELD_OUT_SEED, config.final_eval_scenes, held_out_config))
    checkpoint = save_checkpoint(out / "model.pt", model, config.model, extra={"steps": state["step"], "seed": config.seed})
    curve = plot_loss_curve(state["history"], state["evals"], out / "loss_curve.png")
    last = [r for r in state["history"][-100:] if r["phase"] == "reconstruction"]
    manifest = {
        **kit.manifest_header(MANIFEST_FORMAT, config.command or "edgerun train tracks-to-4d",
                          config.seed, checkpoint, curve, parameters=sum(p.numel() for p in model.parameters())),
        "data": {
            "generator": "edgerun.sim.point_scenes.generate_scene",
            "train": f"a fresh batch of {config.batch} scenes per step, scene i of step s from default_rng([{config.seed}, s, i]); "
            f"{state['step'] * config.batch} scenes seen",
            "train_scene_config": config.scene.to_dict(),
            **({"train_families": {name: FAMILIES[name].to_dict() for name in config.families}, "train_frames": list(config.frames)}
               if config.families else {}),
            **({"initialised_from": config.init_from} if config.init_from else {}),
            "held_out": f"generate_split({HELD_OUT_SEED}, {config.final_eval_scenes}) at N=225 (seeds training never draws)",
            "held_out_scene_config": held_out_config.to_dict(),
        },
        "steps": state["step"],
        "final_train_losses_mean_last_100": {
            key: float(np.mean([r[key] for r in last if key in r])) for key in last[-1] if key not in ("step", "phase")
        } if last else {},
        "metrics": {
            "held_out": metrics,
            "units": "reprojection_px: pixels against the noisy observed tracks (visible points); ate: RMSE of camera centres "
            "after Sim(3) Umeyama alignment, in scene units (background 6-12 units away); rotation_error_deg: frame-to-frame "
            "relative rotation error; depth_abs_rel: per-frame median-scaled; *_identity / *_constant: trivial baselines",
        },
        "evals_during_training": state["evals"],
        "model_config": config.model.to_dict(),
        "train_config": config.to_dict(),
        "train_time_s": state["elapsed_s"],
    }
    manifest_path = kit.write_manifest(out / "manifest.json", manifest)
    return kit.TrainResult(checkpoint, manifest_path, curve, manifest)


def plot_loss_curve(history: list[dict], evals: list[dict], path: Path) -> Path:
    """Training losses (25-step mean) and the held-out reprojection error / ATE over steps."""
    recon = [r for r in history if r["phase"] == "reconstruction"]
    warm = [r for r in history if r["phase"] == "camera_warmup"]
    losses = [kit.Curve("camera warm-up", [r["total"] for r in warm], [r["step"] for r in warm], colour="0.6")]
    for key, colour in (("total", "C0"), ("static", "C1"), ("reprojection", "C2"), ("supervised", "C4")):
        rows = [r for r in recon if key in r]
        losses.append(kit.Curve(key, [r[key] for r in rows], [r["step"] for r in rows], smooth=25, colour=colour))
    steps = [e["step"] for e in evals]
    held_out = [
        kit.Curve("reprojection (px)", [e["reprojection_px"] for e in evals], steps, style="o-"),
        kit.Curve("ATE", [e["ate"] for e in evals], steps, style="s-", colour="C3", axis="right"),
        kit.Curve("ATE, identity cameras", [evals[-1]["ate_identity"]] * len(evals) if evals else [], steps, style="--",
              colour="C3", axis="right"),
    ]  # fmt: skip
    return kit.plot_curves(path, [
        kit.Panel("training losses (25-step mean)", losses, yscale="symlog"),
        kit.Panel("held-out scenes (N=225)", held_out, right_label="ATE (scene units)"),
    ], dpi=90)  # fmt: skip


def frame_range(text: str) -> tuple[int, int]:
    """``--frames``: "20" or "10,40"."""
    try:
        low, _, high = text.partition(",")
        frames = (int(low), int(high or low))
    except ValueError:
        raise ValueError(f"--frames: expected T or LOW,HIGH, got {text!r}") from None
    if not 2 <= frames[0] <= frames[1]:
        raise ValueError(f"--frames: need 2 <= LOW <= HIGH, got {text!r}")
    return frames


def train_main(out: str, steps: int | None, resume: bool, seed: int, families: str = "", frames: str = "20", init_from: str = "") -> int:
    """``edgerun train tracks-to-4d [--out DIR] [--steps N] [--resume] [--seed S]``; returns 0, or 2 after
    printing ``edgerun train tracks-to-4d: <error>``. Without ``--resume`` an ``out`` holding training
    state is refused (nothing is overwritten)."""
    config = TrainConfig(out=out, seed=seed, command=" ".join(["edgerun", *sys.argv[1:]]), init_from=init_from)
    try:
        config = replace(config, families=kit.family_names(families, FAMILIES, TRAIN_FAMILIES), frames=frame_range(frames))
    except ValueError as error:
        print(f"edgerun train tracks-to-4d: {error}", file=sys.stderr)
        return 2
    if steps is not None:
        if steps < 1:
            print(f"edgerun train tracks-to-4d: --steps must be >= 1, got {steps}", file=sys.stderr)
            return 2
        config = replace(config, steps=steps)
    try:
        result = train(config, progress=True, resume=resume)
    except ValueError as error:
        print(f"edgerun train tracks-to-4d: {error}", file=sys.stderr)
        return 2
    m = result.manifest_data["metrics"]["held_out"]
    print(f"wrote {result.checkpoint}, {result.loss_curve}, {result.manifest}")
    print(
        f"  held-out ({m['scenes']} scenes, N=225): reprojection {m['reprojection_px']:.2f} px, ATE {m['ate']:.3f} "
        f"(identity cameras {m['ate_identity']:.3f}), rotation error {m['rotation_error_deg']:.2f} deg "
        f"(identity {m['rotation_error_identity_deg']:.2f}), depth abs-rel {m['depth_abs_rel']:.3f} (constant {m['depth_abs_rel_constant']:.3f})"
    )
    return 0
