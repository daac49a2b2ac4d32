"""``--init-from``: fine-tuning from an earlier run's predictor state or a shipped ``model.pt``, and the
``training_history`` that carries its stages into the new manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from edgerun.models.dino_wm.checkpoint import FORMAT as CHECKPOINT_FORMAT
from edgerun.models.dino_wm.checkpoint import load_checkpoint
from edgerun.models.dino_wm.world_model import DinoWorldModel
from edgerun.models.torch_files import read_torch_file
from edgerun.training.dino_wm.config import STATE_FORMAT, TrainConfig


@dataclass(frozen=True)
class InitWeights:
    """``TrainConfig.init_from``, read: the model whose weights start the predictor stage.

    From a predictor state, ``model`` is in this run's normalised input space and the statistics are
    None; from a ``model.pt`` its proprio encoder takes raw proprio and its action encoder actions
    normalised with ``action_mean`` / ``action_std`` (the checkpoint's ``extra``).
    """

    path: Path
    model: DinoWorldModel
    action_mean: Tensor | None = None
    action_std: Tensor | None = None
    encoder_pretraining: str | None = None
    history: tuple[dict, ...] = ()

    @property
    def from_model(self) -> bool:
        """A ``model.pt``: its frozen encoder is used, its step encoders are re-expressed."""
        return self.action_mean is not None


def read_init(config: TrainConfig) -> InitWeights | None:
    """Read ``config.init_from`` (a ``ckpt-latest.pt`` or a ``model.pt``), checking it fits ``config.model``."""
    if config.init_from is None:
        return None
    path = Path(config.init_from)
    payload = read_torch_file(path, "DINO-WM checkpoint or training state")
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind == CHECKPOINT_FORMAT:
        model, model_config, extra = load_checkpoint(path)
        if model_config != config.model:
            raise ValueError(f"init_from: {path} holds a model of another config ({model_config}); this run trains {config.model}")
        if config.encoder_state_dict:
            raise ValueError(f"init_from: {path} brings its own frozen encoder; leave out encoder_state_dict")
        if extra.get("env") not in (None, config.env):
            raise ValueError(f"init_from: {path} was trained on {extra.get('env')!r}, this run is for {config.env!r}")
        beside = path.with_name("manifest.json")
        earlier = json.loads(beside.read_text()) if beside.is_file() else None
        history = () if earlier is None else (*earlier.get("training_history", [])[:-1], stage_summary(earlier))
        return InitWeights(path, model, torch.tensor(extra["action_mean"]), torch.tensor(extra["action_std"]),
                           extra.get("encoder_pretraining"), history)  # fmt: skip
    if kind != STATE_FORMAT or payload.get("stage") != "predictor" or payload.get("model_config") != config.model.to_dict():
        raise ValueError(f"init_from: {path} is neither a predictor state (ckpt-latest.pt) nor a model.pt of this model config")
    model = DinoWorldModel(config.model)
    model.load_state_dict(payload["model"])
    return InitWeights(path, model)


def renormalise_step_encoders(model: DinoWorldModel, action_from: tuple[Tensor, Tensor], action_to: tuple[Tensor, Tensor],
                              proprio_to: tuple[Tensor, Tensor]) -> None:  # fmt: skip
    """Re-express a trained model's step encoders for another data normalisation, exactly.

    Proprio encoder, raw in (normalisation folded) -> normalised with ``proprio_to`` (m, s) in:
    W p + b = (W s) x + (b + W m) for p = s x + m. Action encoder, blocks normalised with
    ``action_from`` (m0, s0) -> with ``action_to`` (m, s): W (a - m0) / s0 + b = W (s / s0) x + b + W (m - m0) / s0
    for a = s x + m, the per-dimension statistics tiled over the block's ``frameskip`` steps.
    """
    fs = model.config.predictor.frameskip
    (m0, s0), (m, s) = ((t.repeat(fs) for t in pair) for pair in (action_from, action_to))
    pm, ps = proprio_to
    with torch.no_grad():
        action, proprio = model.action_encoder.proj, model.proprio_encoder.proj
        action.bias.add_(action.weight @ ((m - m0) / s0))
        action.weight.mul_(s / s0)
        proprio.bias.add_(proprio.weight @ pm)
        proprio.weight.mul_(ps)



def stage_summary(manifest: dict) -> dict:
    """One ``training_history`` entry: what a training call ran and what its model measured."""
    evaluation = manifest.get("metrics", {}).get("eval")
    keys = ("episodes", "seed", "steps_per_episode", "success_rate", "random_success_rate", "reached_rate", "plan_time_s_mean")
    return {
        "command": manifest.get("command"),
        "created_at": manifest.get("created_at"),
        "data_arrays_sha256": manifest.get("data", {}).get("arrays_sha256"),
        "steps": manifest.get("steps"),
        "rollout_blocks": manifest.get("train_config", {}).get("rollout_blocks"),
        "final_losses": manifest.get("final_losses"),
        "timings_s": manifest.get("timings_s"),
        "checkpoint_sha256": manifest.get("checkpoint", {}).get("sha256"),
        "eval": None if evaluation is None else {key: evaluation.get(key) for key in keys},
    }
