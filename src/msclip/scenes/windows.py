"""The sliding-window grid over a scene: which windows are read, and where each lands on the map."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import shapely
from rasterio import Affine
from rasterio.windows import Window, bounds

from msclip.errors import MSClipError
from msclip.scenes.source import Scene


@dataclass(frozen=True)
class WindowGrid:
    """``rows`` x ``cols`` windows of ``size`` px, one every ``stride`` px from the scene's top-left corner.

    Windows stay inside the scene, so a last strip narrower than the stride is left out. On the map one
    pixel is one window: a stride-wide cell centred in its window (the whole window when stride == size).
    """

    size: int
    stride: int
    rows: int
    cols: int

    def __len__(self) -> int:
        return self.rows * self.cols

    def position(self, k: int) -> tuple[int, int]:
        """(row, col) of the k-th window, row-major."""
        return divmod(k, self.cols)

    def window(self, k: int) -> Window:
        row, col = self.position(k)
        return Window(col * self.stride, row * self.stride, self.size, self.size)

    def __iter__(self) -> Iterator[Window]:
        return (self.window(k) for k in range(len(self)))

    def footprints(self, scene: Scene) -> list[shapely.Polygon]:
        """Each window's footprint in the scene's CRS."""
        transform = Affine(*scene.transform)
        return [shapely.box(*bounds(w, transform)) for w in self]

    def map_transform(self, scene: Scene) -> Affine:
        """The map raster's georeference: scene grid, shifted to the window centres, scaled by the stride."""
        margin = (self.size - self.stride) / 2
        return Affine(*scene.transform) @ Affine.translation(margin, margin) @ Affine.scale(self.stride)


def window_grid(scene: Scene, size: int, stride: int | None = None) -> WindowGrid:
    """All windows of ``size`` px every ``stride`` px that fit in the scene: the default ``size`` tiles the
    scene, a smaller stride overlaps windows (a finer map), a larger one samples the scene sparsely."""
    stride = stride or size
    if stride <= 0:
        raise MSClipError(f"--stride must be a positive number of pixels, not {stride}")
    if scene.width < size or scene.height < size:
        raise MSClipError(
            f"{scene.name}: {scene.width}x{scene.height} px is smaller than one {size} px window"
        )
    return WindowGrid(size, stride, (scene.height - size) // stride + 1, (scene.width - size) // stride + 1)
