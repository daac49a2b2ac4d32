"""TracksTo4D sizes: the paper's network (the official release) and a small one for the CPU."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class TracksTo4DConfig:
    """One TracksTo4D network.

    ``octaves`` NeRF frequencies ``2^j * pi`` per input channel (x, y, visibility): the token has
    ``3 + 2 * 3 * octaves + 1`` features (76 at 12 octaves, the last one a constant 1). ``blocks``
    pairs of one time-axis and one point-axis pre-LN transformer layer of width ``d_model`` with
    ``heads`` x ``head_dim`` attention and an ``mlp`` hidden layer. ``basis`` is K, the number of
    3-D basis elements per point (the first one the static shape, its coefficient fixed at 1).
    ``conv_kernel`` is the per-frame head's circular Conv1d kernel along time (odd; its half must
    not exceed the window length). ``focal_correction`` lets the network scale each frame's focal
    length by ``1 + 0.05 * output`` (used when the intrinsics are guessed, not calibrated).
    The two loss weights travel with the network, as in the released ``conf.json``
    (``reprojection_dynamic_coeff``, ``sparsity_dynamic_coeff``).
    """

    octaves: int = 12
    d_model: int = 256
    heads: int = 16
    head_dim: int = 64
    mlp: int = 2048
    blocks: int = 3
    basis: int = 12
    conv_kernel: int = 31
    focal_correction: bool = False
    dynamic_reprojection_weight: float = 50.0
    sparsity_weight: float = 0.001

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or value < (0 if f.name == "octaves" else 1)):
                raise ValueError(f"TracksTo4DConfig.{f.name}: expected a positive int, got {value!r}")
        if self.dynamic_reprojection_weight < 0 or self.sparsity_weight < 0:
            raise ValueError("TracksTo4DConfig: loss weights must be >= 0")
        if self.d_model % 2:
            raise ValueError(f"TracksTo4DConfig.d_model {self.d_model}: must be even (sinusoidal time encoding)")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"TracksTo4DConfig.conv_kernel {self.conv_kernel}: must be odd")

    @property
    def token_features(self) -> int:
        """Features per (point, frame) before the embedding: x, y, v, their Fourier features, a 1."""
        return 3 + 2 * 3 * self.octaves + 1

    @property
    def frame_channels(self) -> int:
        """Per-frame head outputs: 3 position, 1 focal, K coefficients, 6 rotation, 2 unused (as released)."""
        return self.basis + 12

    @property
    def point_channels(self) -> int:
        """Per-point head outputs: K x 3 basis, 1 for gamma."""
        return 3 * self.basis + 1

    @property
    def min_frames(self) -> int:
        """The shortest window the circular Conv1d can wrap around."""
        return max(1, self.conv_kernel // 2)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TracksTo4DConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TracksTo4DConfig: unknown fields {unknown}")
        return cls(**data)


PAPER = TracksTo4DConfig()
"""The released network (``network_width1=256``, ``positional_dim=12``, ``K_basis=12``, kernel 31,
three blocks of 16 x 64 heads with a 2048-wide MLP): about 13 M parameters."""

SMALL = TracksTo4DConfig(d_model=64, heads=4, head_dim=16, mlp=256, blocks=2, basis=12, conv_kernel=9)
"""The CPU model this project trains and ships (``checkpoints/tracks_to_4d``)."""
