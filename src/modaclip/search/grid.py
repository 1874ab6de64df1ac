"""Pictures of retrieval results: one row per query, its label on the left, hits to the right.

These end up in the README and in metrics/examples.png, where a person judges a model at a
glance, so a broken image must not stop the picture from being drawn.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from modaclip.core.atomic import atomic_file
from modaclip.core.errors import ModaclipError

BACKGROUND = (255, 255, 255)
HIGHLIGHT_COLOUR = (34, 160, 70)
FRAME_COLOUR = (220, 220, 220)
PLACEHOLDER_COLOUR = (200, 200, 200)
TEXT_COLOUR = (40, 40, 40)
ROW_RULE_COLOUR = (235, 235, 235)
MARGIN = 12
GAP = 8
HIGHLIGHT_WIDTH = 4
ELLIPSIS = "…"

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


@dataclass(frozen=True)
class GridCell:
    """One thumbnail: encoded image bytes or a PIL image, a short caption, and a highlight
    flag that draws a coloured border (for instance around a relevant hit)."""

    image: bytes | Image.Image
    caption: str
    highlight: bool = False


@dataclass(frozen=True)
class _Layout:
    """Sizes derived from the thumbnail size, so a bigger grid keeps its proportions."""

    thumb: int
    label_width: int
    caption_size: int
    caption_font: Font
    label_size: int
    label_font: Font

    @property
    def caption_height(self) -> int:
        return round(self.caption_size * 1.8)

    @property
    def label_line_height(self) -> int:
        return round(self.label_size * 1.3)

    @property
    def row_height(self) -> int:
        return self.thumb + self.caption_height

    def cell_x(self, column: int) -> int:
        return MARGIN + self.label_width + GAP + column * (self.thumb + GAP)


def retrieval_grid(rows: Sequence[tuple[str, Sequence[GridCell]]], thumb: int = 112) -> Image.Image:
    """Draw (label, cells) rows; rows may have different numbers of cells.

    The label is wrapped text in a column of its own; for an image query pass the query image
    as the first cell.
    """
    if not rows:
        raise ModaclipError("retrieval_grid needs at least one row")
    if thumb < 32:
        raise ModaclipError(f"thumb must be at least 32 pixels, got thumb={thumb}")
    layout = _layout(thumb)
    columns = max(len(cells) for _, cells in rows)
    width = layout.cell_x(columns) - GAP + MARGIN
    height = 2 * MARGIN + len(rows) * layout.row_height + (len(rows) - 1) * GAP
    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for index, (label, cells) in enumerate(rows):
        top = MARGIN + index * (layout.row_height + GAP)
        if index:
            draw.line([(MARGIN, top - GAP // 2), (width - MARGIN, top - GAP // 2)], ROW_RULE_COLOUR)
        _draw_label(draw, label, (MARGIN, top), layout)
        for column, cell in enumerate(cells):
            _draw_cell(grid, draw, cell, origin=(layout.cell_x(column), top), layout=layout)
    return grid


def _layout(thumb: int) -> _Layout:
    """Font sizes are kept apart from the fonts: without FreeType, Pillow's bitmap fallback
    ignores size and has no size attribute."""
    caption_size = max(10, thumb // 10)
    return _Layout(
        thumb=thumb,
        label_width=round(thumb * 1.5),
        caption_size=caption_size,
        caption_font=ImageFont.load_default(size=caption_size),
        label_size=caption_size + 2,
        label_font=ImageFont.load_default(size=caption_size + 2),
    )


def _draw_label(draw: ImageDraw.ImageDraw, label: str, origin: tuple[int, int], layout: _Layout) -> None:
    max_lines = max(1, layout.row_height // layout.label_line_height)
    lines = _wrap(draw, label, font=layout.label_font, width=layout.label_width, max_lines=max_lines)
    x, y = origin
    for number, line in enumerate(lines):
        position = (x, y + number * layout.label_line_height)
        draw.text(position, line, fill=TEXT_COLOUR, font=layout.label_font)


def _draw_cell(
    grid: Image.Image,
    draw: ImageDraw.ImageDraw,
    cell: GridCell,
    *,
    origin: tuple[int, int],
    layout: _Layout,
) -> None:
    """Paste the thumbnail inside its frame; the frame is always reserved, so highlighted
    and plain thumbnails are the same size and the border never covers the picture."""
    x, y = origin
    inner = layout.thumb - 2 * HIGHLIGHT_WIDTH
    thumbnail = _thumbnail(cell.image, inner, layout.caption_font)
    left = x + HIGHLIGHT_WIDTH + (inner - thumbnail.width) // 2
    top = y + HIGHLIGHT_WIDTH + (inner - thumbnail.height) // 2
    grid.paste(thumbnail, (left, top))
    box = [x, y, x + layout.thumb - 1, y + layout.thumb - 1]
    if cell.highlight:
        draw.rectangle(box, outline=HIGHLIGHT_COLOUR, width=HIGHLIGHT_WIDTH)
    else:
        draw.rectangle(box, outline=FRAME_COLOUR, width=1)
    caption = _truncate(draw, cell.caption, layout.caption_font, layout.thumb)
    caption_top = y + layout.thumb + (layout.caption_height - layout.caption_size) // 2
    draw.text((x, caption_top), caption, fill=TEXT_COLOUR, font=layout.caption_font)


def _thumbnail(image: bytes | Image.Image, size: int, font: Font) -> Image.Image:
    """The image fitted into size x size on white, or a grey placeholder if it cannot be read.

    Pillow reports some corrupt PNG chunks as SyntaxError, hence its place in the list.
    """
    try:
        picture = _open(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return _placeholder(size, font)
    picture = ImageOps.contain(picture, (size, size))
    flat = Image.new("RGB", picture.size, BACKGROUND)
    flat.paste(picture, mask=picture.getchannel("A") if picture.mode == "RGBA" else None)
    return flat


def _open(image: bytes | Image.Image) -> Image.Image:
    """Decode fully now (PIL is lazy), turning EXIF rotation into pixels as a viewer would."""
    if isinstance(image, Image.Image):
        picture = image
    else:
        picture = Image.open(io.BytesIO(image))
        picture.load()
        picture = ImageOps.exif_transpose(picture)
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    return picture.convert("RGBA" if has_alpha else "RGB")


def _placeholder(size: int, font: Font) -> Image.Image:
    placeholder = Image.new("RGB", (size, size), PLACEHOLDER_COLOUR)
    ImageDraw.Draw(placeholder).text((size / 2, size / 2), "unreadable", fill=TEXT_COLOUR, font=font, anchor="mm")
    return placeholder


def _wrap(draw: ImageDraw.ImageDraw, text: str, *, font: Font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to width; text beyond max_lines ends the last line in an ellipsis."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < max_lines:
        line = words.pop(0)
        while words and draw.textlength(f"{line} {words[0]}", font=font) <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words:
        lines[-1] = " ".join([lines[-1], *words])
    return [_truncate(draw, line, font, width) for line in lines]


def _truncate(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> str:
    """Cut text to fit width, marking the cut with an ellipsis.

    Binary search on the prefix length, so a pasted paragraph costs a few measurements.
    """
    if draw.textlength(text, font=font) <= width:
        return text
    fits, too_long = 0, len(text)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if draw.textlength(text[:middle].rstrip() + ELLIPSIS, font=font) <= width:
            fits = middle
        else:
            too_long = middle
    return text[:fits].rstrip() + ELLIPSIS


def save_png_atomic(image: Image.Image, path: str | Path) -> None:
    """Write a PNG so that readers (DVC, a README viewer) never see a half-written file."""
    with atomic_file(path) as temporary:
        image.save(temporary, format="PNG")
