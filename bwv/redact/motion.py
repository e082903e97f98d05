"""What moved between frames, from a small grey copy of each: the camera's motion, hard cuts,
and the parts of the picture that show something the text detector has not looked at yet.

Body cameras swing: a plate can cross the picture in a third of a second, between two of the
detector's whole-frame passes. Three cheap measurements on a ``WIDTH``-pixel-wide grey copy of
every frame (made by the decoder's scaler, not in NumPy) let the engine look where something
new is, and move what it found with the camera:

- **Camera motion**: the global translation between consecutive frames by phase correlation
  (Kuglin & Hines 1975; OpenCV's ``phaseCorrelate``, sub-pixel, Hann-windowed). Accumulated, it
  gives each frame's camera position, so a box found on a parked car is moved with the pan.
- **Cuts**: a frame that no translation of the previous one explains (low correlation peak and
  most of the picture changed) starts a new scene: tracks never cross it.
- **New content** (:class:`Watch`): the picture as the text detector last examined it, moved
  with the camera; blocks of the current frame that differ from it, or that it did not cover
  (exposed by a pan), are where a new plate may be. The detector runs on those regions only,
  or on the whole frame when most of it is new.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH = 192  # the grey copy's width; its height keeps the frame's aspect ratio (even)
BLOCK = 6  # change is judged per BLOCK x BLOCK pixels of the grey copy (~40 px at 720p)
CHANGED = 14.0  # mean absolute grey difference over a block that counts as new content
CUT_PEAK = 0.3  # phase correlation peak below which the shift is not trusted (pans: >= 0.6) ...
TEXTURE = 4.0  # grey levels of spread within a block that count as detail
MIN_TEXTURED = 0.15  # a camera motion is measured only on pictures with this share of detail
EXPLAINS = 1.0  # a camera motion must leave no more difference than standing still
CUT_CHANGED = 0.3  # ... and, with this share of blocks changed, the frame is a cut

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels


def small_size(width: int, height: int) -> tuple[int, int]:
    """The grey copy's size for frames of ``width`` x ``height``."""
    w = min(WIDTH, width)
    return w, max(2, round(height * w / width / 2) * 2)


@dataclass
class Step:
    """One frame against the one before it."""

    shift: tuple[float, float]  # camera motion, frame pixels: content at p moved to p + shift
    cut: bool  # this frame starts a new scene


class Camera:
    """Each frame's camera position (the accumulated translation, in frame pixels) and cuts,
    from the grey copies given in order."""

    def __init__(self, width: int, height: int) -> None:
        self.size = small_size(width, height)
        self.scale = width / self.size[0]
        self._window = cv2.createHanningWindow(self.size, cv2.CV_32F)
        self._previous: np.ndarray | None = None
        self.positions: list[tuple[float, float]] = []
        self.cuts: list[int] = []  # frames that start a scene, after frame 0

    def add(self, grey: np.ndarray) -> Step:
        current = grey.astype(np.float32)
        step = Step((0.0, 0.0), False)
        if self._previous is not None:
            (dx, dy), peak = cv2.phaseCorrelate(self._previous, current, self._window)
            if peak < CUT_PEAK and _cut(self._previous, current):
                step = Step((0.0, 0.0), True)
            elif (
                peak >= CUT_PEAK
                and _textured(self._previous) >= MIN_TEXTURED
                and _explains(self._previous, current, dx, dy)
            ):
                step = Step((dx * self.scale, dy * self.scale), False)
        x, y = self.positions[-1] if self.positions else (0.0, 0.0)
        self.positions.append((x + step.shift[0], y + step.shift[1]))
        if step.cut:
            self.cuts.append(len(self.positions) - 1)
        self._previous = current
        return step


def _textured(grey: np.ndarray) -> float:
    """Share of blocks with detail (grey level spread above ``TEXTURE``): where there is none
    (a wall, a sky), one moving thing would be all that phase correlation sees."""
    h, w = grey.shape
    bh, bw = h // BLOCK, w // BLOCK
    blocks = grey[: bh * BLOCK, : bw * BLOCK].reshape(bh, BLOCK, bw, BLOCK)
    return float((blocks.std(axis=(1, 3)) > TEXTURE).mean())


def _cut(previous: np.ndarray, current: np.ndarray) -> bool:
    """Whether most of the picture changed, beyond a change of exposure (a camera's automatic
    exposure brightens or darkens the whole picture at once: not a new scene)."""
    a = (previous - previous.mean()) / max(float(previous.std()), 1.0)
    b = (current - current.mean()) / max(float(current.std()), 1.0)
    return changed_share(a * 40.0, b * 40.0) >= CUT_CHANGED


def _explains(previous: np.ndarray, current: np.ndarray, dx: float, dy: float) -> bool:
    """Whether moving the whole previous picture by (dx, dy) explains the current one better
    than standing still: the mean grey difference over the overlap at most ``EXPLAINS`` of the
    still one's. Phase correlation can lock onto one large moving thing (a person walking past a
    still camera); moving every box with it would move the boxes on everything else off what
    they hide. Below half a pixel of the grey copy the camera is taken as still: sub-pixel
    estimates on a still picture add up to a drift."""
    ix, iy = round(dx), round(dy)
    if ix == 0 and iy == 0:
        return False
    h, w = previous.shape
    if abs(ix) >= w // 2 or abs(iy) >= h // 2:
        return False
    # The overlap of the two pictures once aligned: previous[y, x] is current[y + iy, x + ix].
    a = previous[max(0, -iy) : h - max(0, iy), max(0, -ix) : w - max(0, ix)]
    b = current[max(0, iy) : h - max(0, -iy), max(0, ix) : w - max(0, -ix)]
    still = float(np.abs(previous - current).mean())
    return float(np.abs(a - b).mean()) <= EXPLAINS * still


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of blocks whose mean grey level differs by more than ``CHANGED``."""
    return float(_block_changes(np.abs(a.astype(np.float32) - b.astype(np.float32))).mean())


def _block_changes(diff: np.ndarray) -> np.ndarray:
    h, w = diff.shape
    bh, bw = -(-h // BLOCK), -(-w // BLOCK)
    padded = np.zeros((bh * BLOCK, bw * BLOCK), np.float32)
    padded[:h, :w] = diff
    means: np.ndarray = padded.reshape(bh, BLOCK, bw, BLOCK).mean(axis=(1, 3))
    return means > CHANGED


class Watch:
    """The picture as the text detector last examined it, kept in the current frame's
    coordinates; :meth:`new_regions` says where the current frame shows something else."""

    def __init__(self, width: int, height: int) -> None:
        self.frame_size = (width, height)
        self.size = small_size(width, height)
        self.scale = width / self.size[0]
        self._seen: np.ndarray | None = None  # grey, float32
        self._covered: np.ndarray | None = None  # which pixels of it were examined
        self._at: tuple[float, float] = (0.0, 0.0)  # camera position it is aligned to

    def new_regions(
        self, grey: np.ndarray, position: tuple[float, float]
    ) -> tuple[float, list[Rect]]:
        """(share of the picture that is new, rectangles around the new parts in frame pixels)
        for the frame with this grey copy and camera position."""
        if self._seen is None or self._covered is None:
            return 1.0, [(0, 0, *self.frame_size)]
        seen, covered = self._aligned(position)
        diff = np.abs(grey.astype(np.float32) - seen)
        diff[covered < 0.5] = 255.0  # not examined: new by definition
        blocks = _block_changes(diff)
        share = float(blocks.mean())
        if not blocks.any():
            return 0.0, []
        mask = cv2.dilate(blocks.astype(np.uint8), np.ones((3, 3), np.uint8))  # a block's margin
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        rects = []
        step = BLOCK * self.scale
        for x, y, w, h, _ in stats[1:count]:
            rects.append(
                (
                    max(0, int(x * step)),
                    max(0, int(y * step)),
                    min(self.frame_size[0], int(np.ceil((x + w) * step))),
                    min(self.frame_size[1], int(np.ceil((y + h) * step))),
                )
            )
        return share, rects

    def examined(
        self, grey: np.ndarray, position: tuple[float, float], rects: list[Rect] | None = None
    ) -> None:
        """Record that the detector has looked at ``rects`` (None: the whole frame) of this
        frame."""
        current = grey.astype(np.float32)
        if rects is None or self._seen is None or self._covered is None:
            self._seen = current
            self._covered = np.ones_like(current)
            self._at = position
            return
        seen, covered = self._aligned(position)
        for x0, y0, x1, y1 in rects:
            a, b = int(x0 / self.scale), int(y0 / self.scale)
            c, d = int(np.ceil(x1 / self.scale)), int(np.ceil(y1 / self.scale))
            seen[b:d, a:c] = current[b:d, a:c]
            covered[b:d, a:c] = 1.0
        self._seen, self._covered, self._at = seen, covered, position

    def _aligned(self, position: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        assert self._seen is not None and self._covered is not None
        dx = (position[0] - self._at[0]) / self.scale
        dy = (position[1] - self._at[1]) / self.scale
        if abs(dx) < 0.5 and abs(dy) < 0.5:
            return self._seen.copy(), self._covered.copy()
        # Nearest neighbour: repeated bilinear shifts would blur what was seen into a smear.
        m = np.array([[1, 0, round(dx)], [0, 1, round(dy)]], np.float32)
        size = self.size
        seen = cv2.warpAffine(self._seen, m, size, flags=cv2.INTER_NEAREST)
        covered = cv2.warpAffine(self._covered, m, size, flags=cv2.INTER_NEAREST, borderValue=0)
        # The rounding is not lost: the picture stays aligned to where it was put.
        self._at = (
            self._at[0] + round(dx) * self.scale,
            self._at[1] + round(dy) * self.scale,
        )
        self._seen, self._covered = seen, covered
        return seen.copy(), covered.copy()
