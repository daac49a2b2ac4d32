"""What ``edgerun train dino-wm`` trains: the per-env recipes and the run's :class:`TrainConfig`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgerun.models.dino_wm.config import POINT_MAZE_CPU, WALL_CPU, WorldModelConfig

STATE_FORMAT = "edgerun.dino_wm.train_state"
"""The resumable state of both stages (``encoder-latest.pt``, ``ckpt-latest.pt``), told apart by ``stage``."""


@dataclass(frozen=True)
class EnvRecipe:
    """What ``edgerun train dino-wm --env ENV`` trains by default for a registered env."""

    model: WorldModelConfig
    collect_policies: tuple[str, ...]
    collect_episodes: int
    frame_extent: float
    """Proprio position units across one frame (Wall: 1, the unit arena; PointMaze: 5.2 m): turns
    the encoder probe's error into pixels."""
    map_bounds: tuple[float, float, float, float]
    """The free-space map's extent, ``(x0, y0, x1, y1)`` in proprio position units."""
    map_cell: float
    """Its cell: finer than any wall, so that cells on either side of one are never neighbours (Wall:
    0.02 against a wall 0.10 wide with the dot's radius; PointMaze: 0.1 m against 1 m wall cells)."""


RECIPES: dict[str, EnvRecipe] = {
    "edgerun/Wall-v0": EnvRecipe(WALL_CPU, ("mixed", "wander"), 400, 1.0, (0.0, 0.0, 1.0, 1.0), 0.02),
    "edgerun/PointMaze-v0": EnvRecipe(POINT_MAZE_CPU, ("random",), 1000, 5.2, (-2.5, -2.5, 2.5, 2.5), 0.1),
}
"""PointMaze's data are uniform random actions, as the paper's (2000 episodes of 100 steps there)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (stored in the manifest and the resumable state).

    Data: ``dataset`` (one ``.npz`` in the ``envs.collect`` layout, or a list of them) or, when None,
    ``collect_episodes`` x ``collect_steps`` episodes of ``env`` per policy of ``collect_policies``,
    collected into ``out/dataset-POLICY.npz`` (seeded ``seed``, ``seed + 1``, ...): ``envs.collect``'s
    policies (``wander``: :class:`edgerun.envs.collect.Wander`). The default is ``mixed`` (door crossings: the
    expert with noise and random steps) plus ``wander`` (full-speed runs into and along the wall).
    The expert almost never pushes against the wall (4 of 8000 five-step blocks of a ``mixed`` set
    have three or more blocked steps; i.i.d. ``random`` actions barely move the dot), so a model
    trained without ``wander`` has not seen that the wall stops the dot, and CEM finds and exploits
    plans that walk through it (measured: the planned path crosses the wall, the dot stops at it).
    ``val_fraction`` of each file's episodes (its last ones) are held out.

    Encoder: ``encoder_steps`` Adam steps of the masked denoising autoencoder (batch ``encoder_batch``
    frames, lr ``encoder_lr`` with warmup and cosine decay, ``mask_ratio`` of the tokens masked;
    ``colour_balance``: pixels weighted by :func:`colour_weights`, so the rare dot counts).
    ``encoder_state_dict``: a path to official DINOv2 weights (``torch.load``-able state dict) to use
    instead; pretraining is then skipped (the model config must then be a ViT-S/14 one).

    Predictor: ``predictor_steps`` Adam steps on batches of ``batch`` windows. ``lr`` 5e-4 is the paper's
    predictor (and action-encoder) learning rate; here with 100 warmup steps and a cosine decay to 10 %,
    which reaches a lower loss in a short CPU budget than the paper's constant rate. Extending
    ``predictor_steps`` on resume stretches the schedule from the saved step on.
    ``rollout_blocks`` K: 1 is the paper's teacher-forced loss (windows of H + 1 frames); K > 1 trains
    on windows of H + K frames, the predictor rolled out open-loop over K action blocks from the first
    H frames (its own predictions fed back, as CEM uses it), MSE on every predicted frame. Measured on
    the first shipped Wall model (teacher-forced, H = 1): the position decoded from its predicted
    proprio was off by 0.02 arena units after one block and 0.25 after five (the planning horizon),
    and CEM chose plans whose later blocks crossed the wall.
    ``init_from``: weights that start the predictor stage (fine-tuning; the optimizer and schedule start
    afresh), of the same model config: a predictor-stage state (``ckpt-latest.pt``) of an earlier run,
    which must share this run's data and encoder, or a trained ``model.pt`` (a shipped checkpoint), whose
    frozen encoder is then used as is (stage 2 is skipped) and whose action / proprio encoders are
    re-expressed exactly for this run's data normalisation (:func:`renormalise_step_encoders`). The
    earlier stages (a ``manifest.json`` beside the ``model.pt``) head the new manifest's ``training_history``.

    ``threads``: ``torch.set_num_threads`` for the run (None: torch's default). On a machine shared
    with other jobs 1 is often several times faster than oversubscribed cores.
    ``checkpoint_every``: steps between resumable saves (both stages). ``eval_episodes`` > 0 runs
    :func:`~.evaluate.evaluate` on the final checkpoint and puts the result in the manifest's metrics.
    """

    env: str = "edgerun/Wall-v0"
    out: str = "runs/dino_wm_wall"
    dataset: str | list[str] | None = None
    collect_episodes: int = 400
    collect_steps: int = 100
    collect_policies: tuple[str, ...] = ("mixed", "wander")
    model: WorldModelConfig = WALL_CPU
    encoder_state_dict: str | None = None
    encoder_steps: int = 2500
    encoder_batch: int = 64
    encoder_lr: float = 1e-3
    mask_ratio: float = 0.25
    colour_balance: bool = True
    predictor_steps: int = 9000
    rollout_blocks: int = 1
    init_from: str | None = None
    batch: int = 64
    lr: float = 5e-4
    warmup_steps: int = 100
    val_fraction: float = 0.05
    seed: int = 0
    checkpoint_every: int = 500
    eval_episodes: int = 0
    threads: int | None = None
    command: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_env(cls, env: str, **overrides: Any) -> TrainConfig:
        """The defaults of :data:`RECIPES` for ``env`` (model, data policies, episodes), then ``overrides``."""
        recipe = RECIPES.get(env)
        if recipe is None:
            raise ValueError(f"no DINO-WM training recipe for {env!r}; known: {sorted(RECIPES)}")
        return cls(env=env, model=recipe.model, collect_policies=recipe.collect_policies,
                   collect_episodes=recipe.collect_episodes, **overrides)  # fmt: skip

