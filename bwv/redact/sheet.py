"""The contact sheet: one PNG an officer looks at before a copy is rendered.

Top: frames sampled evenly through the clip, with every planned box drawn and labelled with its
track id. Below: one picture per track (its largest detection) with id, class and time span, so
the officer can say "keep track 3" without scrubbing through the video.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bwv.redact.plan import Plan
from bwv.redact.render import frame_time

COLUMNS = 4
# BGR: faces red, plates amber, other text cyan, manual magenta, kept tracks green.
COLOURS = {
    "face": (40, 40, 230),
    "plate": (0, 170, 255),
    "text": (230, 200, 0),
    "manual": (200, 0, 200),
    "keep": (60, 200, 60),
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(image: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int]) -> None:
    (w, h), base = cv2.getTextSize(text, _FONT, 0.45, 1)
    x, y = at
    y = max(y, h + 2)
    cv2.rectangle(image, (x, y - h - 3), (x + w + 4, y + base - 1), colour, -1)
    cv2.putText(image, text, (x + 2, y - 2), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)


def _tile(plan: Plan, frame: int, thumb: np.ndarray) -> np.ndarray:
    tile = thumb.copy()
    scale = tile.shape[1] / plan.width
    for track in plan.tracks:
        for f, *box in track.boxes:
            if f != frame:
                continue
            colour = COLOURS["keep" if track.keep else track.cls]
            x0, y0, x1, y1 = (round(v * scale) for v in box)
            cv2.rectangle(tile, (x0, y0), (x1, y1), colour, 2)
            _label(tile, f"#{track.id}{' keep' if track.keep else ''}", (x0, y0 - 2), colour)
    fps = plan.fps()
    for n, manual in enumerate(plan.manual, 1):
        if frame in plan.manual_frames(manual):  # the frames the copy hides it on
            x0, y0, x1, y1 = (round(v * scale) for v in manual.box)
            cv2.rectangle(tile, (x0, y0), (x1, y1), COLOURS["manual"], 2)
            _label(tile, f"manual {n}", (x0, y0 - 2), COLOURS["manual"])
    caption = f"frame {frame}  {frame_time(frame, fps)}"
    bar = np.full((22, tile.shape[1], 3), 32, np.uint8)
    cv2.putText(bar, caption, (6, 16), _FONT, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([tile, bar])


def _track_strip(plan: Plan, crops: dict[int, np.ndarray], width: int) -> np.ndarray | None:
    cards = []
    fps = plan.fps()
    for track in plan.tracks:
        crop = crops.get(track.id)
        if crop is None:
            continue
        first, last = track.boxes[0][0], track.boxes[-1][0]
        lines = [
            f"#{track.id} {track.cls}{' KEEP' if track.keep else ''}",
            f"{frame_time(first, fps)}-{frame_time(last, fps)}",
            f"{len(track.detections)} detections",
        ]
        card = np.full((crop.shape[0] + 56, max(crop.shape[1], 150), 3), 24, np.uint8)
        card[: crop.shape[0], : crop.shape[1]] = crop
        colour = COLOURS["keep" if track.keep else track.cls]
        cv2.rectangle(card, (0, 0), (crop.shape[1] - 1, crop.shape[0] - 1), colour, 2)
        for n, line in enumerate(lines):
            y = crop.shape[0] + 16 + 17 * n
            cv2.putText(card, line, (4, y), _FONT, 0.45, (235, 235, 235), 1, cv2.LINE_AA)
        cards.append(card)
    if not cards:
        return None
    rows: list[list[np.ndarray]] = []
    row: list[np.ndarray] = []
    used = 0
    for card in cards:
        if used + card.shape[1] + 8 > width and row:
            rows.append(row)
            row, used = [], 0
        row.append(card)
        used += card.shape[1] + 8
    rows.append(row)
    height = max(c.shape[0] for c in cards)
    strip = np.full((len(rows) * (height + 8), width, 3), 16, np.uint8)
    for r, cards_in_row in enumerate(rows):
        x = 0
        for card in cards_in_row:
            y = r * (height + 8)
            strip[y : y + card.shape[0], x : x + card.shape[1]] = card
            x += card.shape[1] + 8
    return strip


def write_sheet(
    plan: Plan, thumbnails: dict[int, np.ndarray], crops: dict[int, np.ndarray], path: Path
) -> Path:
    """Draw the contact sheet for ``plan`` and write it as a PNG at ``path``."""
    frames = sorted(thumbnails)
    tiles = [_tile(plan, f, thumbnails[f]) for f in frames]
    tile_h, tile_w = tiles[0].shape[:2]
    rows = -(-len(tiles) // COLUMNS)
    width = COLUMNS * tile_w
    grid = np.full((rows * tile_h, width, 3), 16, np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, COLUMNS)
        grid[r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w] = tile
    title = np.full((40, width, 3), 48, np.uint8)
    counts: dict[str, int] = {}
    for track in plan.tracks:
        counts[track.cls] = counts.get(track.cls, 0) + 1
    summary = ", ".join(f"{n} {cls} track{'s' if n != 1 else ''}" for cls, n in counts.items())
    heading = (
        f"{plan.evidence_id or 'local file'}  {plan.width}x{plan.height}  {plan.frames} frames  "
        f"{plan.duration_s:.1f}s   {summary or 'nothing found'}   mode: {plan.options.mode}"
    )
    cv2.putText(title, heading, (10, 27), _FONT, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    parts = [title, grid]
    strip = _track_strip(plan, crops, width)
    if strip is not None:
        parts.append(strip)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.vstack(parts)):
        raise OSError(f"could not write contact sheet {path}")
    return path
