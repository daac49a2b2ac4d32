"""DINO-WM sizes: the DINOv2 encoder (official ViT-S/14 and a tiny one), the predictor, the decoder and
the whole world model, at paper size and small enough for CPU tests."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class EncoderConfig:
    """A DINOv2 ViT encoder.

    ``img_size`` is the image size the checkpoint's positional embedding was trained at: the stored
    ``pos_embed`` holds ``1 + (img_size // patch_size) ** 2`` tokens (518 -> 37 x 37 for the official
    hub models), so an official state dict loads unchanged. ``input_size`` is the square size the
    encoder is run at (196 for DINO-WM -> 14 x 14 = 196 patch tokens); the positional embedding is
    interpolated to it once, not per forward.
    """

    patch_size: int = 14
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    img_size: int = 518
    input_size: int = 196
    layerscale_init: float = 1e-5
    ln_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for name in ("img_size", "input_size"):
            size = getattr(self, name)
            if size <= 0 or size % self.patch_size:
                raise ValueError(f"{name} {size} is not a positive multiple of patch_size {self.patch_size}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden_dim(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def checkpoint_grid(self) -> int:
        """Side of the patch grid the stored ``pos_embed`` covers (37 for the official models)."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patch tokens per image at ``input_size`` (196 for DINO-WM)."""
        return (self.input_size // self.patch_size) ** 2


VITS14 = EncoderConfig()
"""Official ``dinov2_vits14`` (about 22 M parameters), run at 196 x 196 as in DINO-WM."""

VIT_TINY = EncoderConfig(embed_dim=64, depth=2, num_heads=2, img_size=98, input_size=56)
"""A few hundred thousand parameters: 7 x 7 stored grid, run at 56 x 56 -> 16 patch tokens."""


@dataclass(frozen=True)
class PredictorConfig:
    """DINO-WM's predictor: a ViT over the last ``history`` frames of patch tokens, frame-causal.

    Each of the ``history * num_patches`` input tokens is one encoder patch token (``visual_dim``)
    with the frame's proprio embedding and action embedding (``emb_dim`` each) tiled onto it, so the
    transformer width is ``token_dim = visual_dim + 2 * emb_dim`` (404 at paper size). There is no
    patchify: tokens go in as they come from the encoder.

    Fields:
        depth: transformer blocks (6 in the paper).
        heads: attention heads (16).
        head_dim: width of one head (64); ``inner_dim = heads * head_dim`` (1024) is the width of
            q, k and v, which is not the token width.
        mlp_dim: hidden width of each block's MLP (2048).
        dropout: dropout on attention weights, on each residual branch's output and inside the MLP
            (0.1); active only in training mode.
        num_patches: patch tokens per frame, P (196 = 14 x 14 for ViT-S/14 at 196 x 196).
        visual_dim: width of one encoder patch token, D (384 for ViT-S/14).
        proprio_dim: raw proprioceptive state per frame, in the environment's units (4 for PointMaze:
            x, y, vx, vy).
        action_dim: raw action of one environment step (2 for PointMaze, Push-T and Wall).
        frameskip: environment steps per model frame (5); their actions are concatenated into one
            action vector of ``action_input_dim = action_dim * frameskip`` inputs.
        history: frames of context H the predictor sees (3 for PointMaze and Push-T, 1 for Wall);
            the learned positional embedding covers ``history * num_patches`` tokens.
        emb_dim: width of the proprio embedding and of the action embedding (10 each).
    """

    depth: int = 6
    heads: int = 16
    head_dim: int = 64
    mlp_dim: int = 2048
    dropout: float = 0.1
    num_patches: int = 196
    visual_dim: int = 384
    proprio_dim: int = 4
    action_dim: int = 2
    frameskip: int = 5
    history: int = 3
    emb_dim: int = 10

    def __post_init__(self) -> None:
        for name in ("depth", "heads", "head_dim", "mlp_dim", "num_patches", "visual_dim", "proprio_dim",
                     "action_dim", "frameskip", "history", "emb_dim"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"PredictorConfig.{name}: expected a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"PredictorConfig.dropout: expected a probability in [0, 1), got {self.dropout!r}")

    @property
    def token_dim(self) -> int:
        """Transformer width: visual + proprio embedding + action embedding (404 at paper size)."""
        return self.visual_dim + 2 * self.emb_dim

    @property
    def inner_dim(self) -> int:
        """Width of q, k and v across all heads (1024 at paper size)."""
        return self.heads * self.head_dim

    @property
    def action_input_dim(self) -> int:
        """Inputs of the action encoder: ``frameskip`` raw actions concatenated (10 at paper size)."""
        return self.action_dim * self.frameskip

    @property
    def num_tokens(self) -> int:
        """Tokens the positional embedding covers: ``history * num_patches``."""
        return self.history * self.num_patches


@dataclass(frozen=True)
class DecoderConfig:
    """Optional image decoder: patch tokens -> RGB image, DINO-WM's VQ-VAE decoder without the quantiser.

    Two stages, each a 3x3 conv, ``res_blocks`` residual blocks, a ReLU and transposed convolutions
    that upsample by ``upsample_stride`` then ``decode_stride`` (2 or 4 each): a 14 x 14 token grid
    becomes a 224 x 224 image at paper size. Names follow the official ``VQVAE`` (``upsample_b``,
    ``dec``) so its weights convert one to one; see ``official.py``.

    Fields:
        channel: width of the convolutional trunk (``channel`` of the official VQVAE).
        res_blocks: residual blocks per stage (``n_res_block``).
        res_channel: hidden width inside a residual block (``n_res_channel``).
        upsample_stride: upsampling of the first stage (token grid -> feature map), 2 or 4.
        decode_stride: upsampling of the second stage (feature map -> image), 2 or 4.
    """

    channel: int = 128
    res_blocks: int = 2
    res_channel: int = 32
    upsample_stride: int = 4
    decode_stride: int = 4

    def __post_init__(self) -> None:
        for name in ("upsample_stride", "decode_stride"):
            if getattr(self, name) not in (2, 4):
                raise ValueError(f"DecoderConfig.{name}: expected 2 or 4, got {getattr(self, name)!r}")
        if self.channel < 4 or self.channel % 4:
            raise ValueError(f"DecoderConfig.channel: expected a positive multiple of 4, got {self.channel!r}")

    @property
    def scale(self) -> int:
        """Output pixels per token along one side (16 at paper size)."""
        return self.upsample_stride * self.decode_stride


@dataclass(frozen=True)
class WorldModelConfig:
    """A whole DINO-WM: frozen encoder, predictor, optional decoder, and the planning weight ``alpha``.

    Fields:
        encoder: the frozen DINOv2 encoder; its ``embed_dim`` and ``num_patches`` must equal the
            predictor's ``visual_dim`` and ``num_patches``.
        predictor: the predictor and the action / proprio encoders' sizes.
        alpha: weight of the proprio term in the planning cost (1 for Push-T and Wall, 0 for PointMaze).
        decoder: the optional image decoder, ``None`` for none (planning never needs it).
    """

    encoder: EncoderConfig = VITS14
    predictor: PredictorConfig = PredictorConfig()
    alpha: float = 1.0
    decoder: DecoderConfig | None = None

    def __post_init__(self) -> None:
        if self.encoder.embed_dim != self.predictor.visual_dim:
            raise ValueError(
                f"WorldModelConfig: encoder.embed_dim {self.encoder.embed_dim} != predictor.visual_dim "
                f"{self.predictor.visual_dim}"
            )
        if self.encoder.num_patches != self.predictor.num_patches:
            raise ValueError(
                f"WorldModelConfig: encoder gives {self.encoder.num_patches} patches per image "
                f"(input {self.encoder.input_size}, patch {self.encoder.patch_size}) but predictor.num_patches "
                f"is {self.predictor.num_patches}"
            )

    def to_dict(self) -> dict:
        """Plain nested dict of ints, floats and None (JSON-able; stored in our checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WorldModelConfig:
        """Inverse of :meth:`to_dict`; an unknown or missing field is an error naming it."""

        def build(kind: type, value: object, where: str):
            if not isinstance(value, dict):
                raise ValueError(f"config {where}: expected a dict of {kind.__name__} fields, got {type(value).__name__}")
            names = {f.name for f in fields(kind)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ValueError(f"config {where}: unknown {kind.__name__} fields {unknown} (known: {sorted(names)})")
            return kind(**value)

        if not isinstance(data, dict):
            raise ValueError(f"config: expected a dict, got {type(data).__name__}")
        data = dict(data)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"config: unknown WorldModelConfig fields {unknown}")
        decoder = data.get("decoder")
        return cls(
            encoder=build(EncoderConfig, data.get("encoder", {}), "encoder"),
            predictor=build(PredictorConfig, data.get("predictor", {}), "predictor"),
            alpha=float(data.get("alpha", 1.0)),
            decoder=None if decoder is None else build(DecoderConfig, decoder, "decoder"),
        )


PAPER_DECODER = DecoderConfig()
"""The official VQ-VAE decoder's defaults (quantiser off): 14 x 14 tokens -> 224 x 224 RGB."""

SMALL_DECODER = DecoderConfig(channel=16, res_blocks=1, res_channel=8, upsample_stride=2, decode_stride=2)
"""A few thousand parameters: 4 x 4 tokens -> 16 x 16 RGB, for CPU tests."""

PAPER_POINTMAZE = WorldModelConfig(VITS14, PredictorConfig(history=3, proprio_dim=4, action_dim=2), alpha=0.0)
"""PointMaze: H = 3, frameskip 5, proprio (x, y, vx, vy), 2-d action; planning ignores proprio (alpha 0)."""

PAPER_PUSHT = WorldModelConfig(VITS14, PredictorConfig(history=3, proprio_dim=4, action_dim=2), alpha=1.0)
"""Push-T: H = 3, frameskip 5, proprio (agent x, y, vx, vy), 2-d action, alpha 1."""

PAPER_WALL = WorldModelConfig(VITS14, PredictorConfig(history=1, proprio_dim=2, action_dim=2), alpha=1.0)
"""Wall: H = 1, frameskip 5, 2-d action, alpha 1; proprio is the dot's (x, y), as edgerun's Wall env
gives it (the converter reads an official checkpoint's own proprio size from its weights)."""

_SMALL_PREDICTOR = PredictorConfig(
    depth=2, heads=4, head_dim=16, mlp_dim=128, dropout=0.1,
    num_patches=VIT_TINY.num_patches, visual_dim=VIT_TINY.embed_dim, proprio_dim=4, action_dim=2,
)  # fmt: skip

SMALL_POINTMAZE = WorldModelConfig(VIT_TINY, replace(_SMALL_PREDICTOR, history=3), alpha=0.0)
"""CPU size, PointMaze layout: 4 x 4 patches x 64 (``VIT_TINY`` at 56 x 56), 2 blocks, 4 heads x 16, H = 3."""

SMALL_WALL = WorldModelConfig(VIT_TINY, replace(_SMALL_PREDICTOR, history=1, proprio_dim=2), alpha=1.0)
"""CPU size, Wall layout: as ``SMALL_POINTMAZE`` with H = 1 and a 2-d proprio (x, y)."""

PRESETS: dict[str, WorldModelConfig] = {
    "paper_pointmaze": PAPER_POINTMAZE,
    "paper_pusht": PAPER_PUSHT,
    "paper_wall": PAPER_WALL,
    "small_pointmaze": SMALL_POINTMAZE,
    "small_wall": SMALL_WALL,
}


WALL_CPU_ENCODER = EncoderConfig(
    patch_size=8, embed_dim=64, depth=4, num_heads=4, mlp_ratio=4.0, img_size=64, input_size=64, layerscale_init=0.1
)
"""DINOv2 architecture at CPU size: 64 x 64 frames (the env's own size, no resize), patch 8 -> 8 x 8
tokens of 64 channels, 4 blocks, 4 heads (about 0.2 M parameters). A patch is 8 px, the dot 3.2 px
across, the wall 3.2 px thick: a token sees the dot whole or split between two neighbours, never
blurred away. ``layerscale_init`` 0.1 instead of DINOv2's 1e-5: trained from scratch in minutes, the
blocks must matter from the first step."""

WALL_CPU = WorldModelConfig(
    encoder=WALL_CPU_ENCODER,
    predictor=PredictorConfig(
        depth=2, heads=4, head_dim=16, mlp_dim=128, dropout=0.1, num_patches=WALL_CPU_ENCODER.num_patches,
        visual_dim=WALL_CPU_ENCODER.embed_dim, proprio_dim=2, action_dim=2, frameskip=5, history=1, emb_dim=10,
    ),
    alpha=1.0,
)  # fmt: skip
"""The shipped Wall model: :data:`WALL_CPU_ENCODER`, a 2-block predictor (4 heads x 16, MLP 128) over
H = 1 frame of 64 tokens, frameskip 5, 2-d action and proprio, ``alpha`` 1 (the paper's Wall setting).
Sized so one CEM iteration (300 samples x 5 blocks, one batched rollout) takes about 0.3 s on 2 CPU cores."""


POINT_MAZE_CPU = WorldModelConfig(
    encoder=WALL_CPU_ENCODER,
    predictor=replace(WALL_CPU.predictor, proprio_dim=4),
    alpha=0.0,
)
"""The PointMaze model at CPU size: :data:`WALL_CPU`'s encoder and predictor on the 64 x 64 top-down
frames (the 5 m maze, the ball 5 px across), proprio ``(x, y, vx, vy)``, ``alpha`` 0 (the paper's
PointMaze objective: the visual latent only). H = 1 where the paper has 3: the proprio holds the
velocity, so one frame is the whole (Markov) state, and three frames would triple the tokens of every
CEM rollout."""
