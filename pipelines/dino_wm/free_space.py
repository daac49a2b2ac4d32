"""Where the agent can go, learnt from its training data, and how far each place is from a goal.

DINO-WM's objective scores how close a plan's *last* predicted state is to the goal. Between rooms
or maze arms that distance points through walls: a dot pressed against the wall at the goal's
height, or a ball in the wrong arm of the U, sits in a local minimum no sampling budget escapes
(measured with a perfect model: ``docs/dino_wm.md``). A :class:`FreeSpaceMap` replaces the straight
line with the distance *through free space*:

- the map is an occupancy grid over the agent's position (the first two proprio values: the dot's
  ``(x, y)`` in Wall, the ball's in PointMaze), a cell marked free when the training data visited it.
  Nothing but recorded positions goes in: no map of the env, no wall geometry;
- free cells are linked to their eight neighbours, weighted by the distance between their centres
  (the grid is finer than any wall, so neighbours never straddle one);
- :meth:`FreeSpaceMap.cost_to_go` runs Dijkstra (``scipy.sparse.csgraph``) once per goal; the
  resulting :class:`CostToGo` answers, for any batch of positions, the geodesic distance to the
  goal (cells the data never visited take their nearest free cell's value plus the way to it).

The map is saved beside a checkpoint (``free_space.npz``: the grid and its occupancy, a few KiB),
built by ``edgerun train dino-wm-map`` from the same data the model trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from edgerun.errors import CheckpointError

FILE_NAME = "free_space.npz"
"""A map's file name beside its checkpoint."""

_GRID_EXCESS = 1.0824
"""The most an 8-neighbour grid path exceeds the straight line by (at 22.5 degrees: 1 / cos(22.5°))."""
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


@dataclass(frozen=True)
class FreeSpaceMap:
    """An occupancy grid of positions: ``free[i, j]`` is the cell ``origin + (j, i) * cell`` (x along
    columns, y along rows) to ``origin + (j + 1, i + 1) * cell``."""

    origin: np.ndarray
    cell: float
    free: np.ndarray

    def __post_init__(self) -> None:
        if self.cell <= 0:
            raise ValueError(f"cell size must be > 0, got {self.cell}")
        if self.free.ndim != 2 or self.free.dtype != bool or not self.free.any():
            raise ValueError(f"expected a 2-D boolean occupancy grid with a free cell, got {self.free.dtype} {self.free.shape}")

    @classmethod
    def from_positions(cls, positions: np.ndarray, cell: float, bounds: tuple[float, float, float, float]) -> FreeSpaceMap:
        """The cells any of ``positions`` (..., 2) fall in, on a grid of ``cell`` over ``bounds`` (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = bounds
        origin = np.array([x0, y0], dtype=np.float64)
        shape = (int(np.ceil((y1 - y0) / cell)), int(np.ceil((x1 - x0) / cell)))
        free = np.zeros(shape, dtype=bool)
        rows, cols = _cells(np.asarray(positions, dtype=np.float64).reshape(-1, 2), origin, cell, shape)
        free[rows, cols] = True
        return cls(origin, float(cell), free)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, origin=self.origin, cell=np.float64(self.cell), free=self.free)

    @classmethod
    def load(cls, path: str | Path) -> FreeSpaceMap:
        if not Path(path).is_file():
            raise CheckpointError(f"no free-space map at {path}: build one with edgerun train dino-wm-map (the free_space "
                                  "objective needs it), or plan with the paper objective")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(np.asarray(data["origin"], dtype=np.float64), float(data["cell"]), np.asarray(data["free"], dtype=bool))
        except (OSError, KeyError, ValueError) as error:
            raise CheckpointError(f"{path}: not a free-space map ({error})") from error

    def cost_to_go(self, goal: np.ndarray) -> CostToGo:
        """Geodesic distances to ``goal`` (its first two values: a position) from every cell."""
        goal_xy = np.asarray(goal, dtype=np.float64)[:2]
        shape = self.free.shape
        index = np.arange(self.free.size).reshape(shape)
        sources, targets, weights = [], [], []
        for dy, dx in _NEIGHBOURS:
            a = self.free[max(0, -dy) : shape[0] - max(0, dy), max(0, -dx) : shape[1] - max(0, dx)]
            b = self.free[max(0, dy) : shape[0] + min(0, dy) or None, max(0, dx) : shape[1] + min(0, dx) or None]
            both = a & b
            ia = index[max(0, -dy) : shape[0] - max(0, dy), max(0, -dx) : shape[1] - max(0, dx)][both]
            ib = index[max(0, dy) : shape[0] + min(0, dy) or None, max(0, dx) : shape[1] + min(0, dx) or None][both]
            sources.append(ia)
            targets.append(ib)
            weights.append(np.full(len(ia), self.cell * np.hypot(dy, dx)))
        graph = coo_matrix((np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))), shape=(self.free.size,) * 2)
        start = self._nearest_free(goal_xy)
        distances = dijkstra(graph.tocsr(), directed=False, indices=int(index[start])).reshape(shape)
        distances += np.linalg.norm(self._centre(*start) - goal_xy)
        reached = np.isfinite(distances)
        # a cell the data never visited (or cut off from the goal) takes its nearest reached cell's
        # distance plus the straight way there
        _, (near_rows, near_cols) = ndimage.distance_transform_edt(~reached, return_indices=True)
        rows, cols = np.indices(shape)
        offset = np.hypot(rows - near_rows, cols - near_cols) * self.cell
        distances = distances[near_rows, near_cols] + offset
        # where the way through free space is the straight line (within the 8-neighbour grid's
        # 8.3 % excess and a cell), the straight line is the exact distance
        straight = np.linalg.norm(self._centre(rows, cols).transpose(1, 2, 0) - goal_xy, axis=-1)
        return CostToGo(self, goal_xy, distances, distances <= straight * _GRID_EXCESS + 1.5 * self.cell)

    def _nearest_free(self, xy: np.ndarray) -> tuple[int, int]:
        rows, cols = _cells(xy[None], self.origin, self.cell, self.free.shape)
        free_rows, free_cols = np.nonzero(self.free)
        nearest = np.argmin((free_rows - rows[0]) ** 2 + (free_cols - cols[0]) ** 2)
        return int(free_rows[nearest]), int(free_cols[nearest])

    def _centre(self, row: Any, col: Any) -> np.ndarray:
        """Cell centres, (2, ...) for arrays of rows and columns."""
        offsets = (np.array([col, row], dtype=np.float64) + 0.5) * self.cell
        return self.origin.reshape(2, *([1] * (offsets.ndim - 1))) + offsets


@dataclass(frozen=True)
class CostToGo:
    """Distances through free space to one goal: ``cost_to_go(positions (..., 2)) -> (...)``.

    Never below the straight-line distance, and equal to it wherever the goal is in straight sight
    (``straight``: the grid's way is the straight line), so the cell size does not blur the goal."""

    free_space: FreeSpaceMap
    goal: np.ndarray
    distances: np.ndarray
    straight: np.ndarray

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.float64)
        rows, cols = _cells(positions.reshape(-1, 2), self.free_space.origin, self.free_space.cell, self.distances.shape)
        shape = positions.shape[:-1]
        geodesic, straight = self.distances[rows, cols].reshape(shape), self.straight[rows, cols].reshape(shape)
        euclidean = np.linalg.norm(positions - self.goal, axis=-1)
        return np.where(straight, euclidean, np.maximum(geodesic, euclidean))


def _cells(xy: np.ndarray, origin: np.ndarray, cell: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of each (N, 2) position, clipped onto the grid."""
    ij = np.floor((xy - origin) / cell).astype(np.int64)
    return np.clip(ij[:, 1], 0, shape[0] - 1), np.clip(ij[:, 0], 0, shape[1] - 1)
