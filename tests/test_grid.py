"""Retrieval grids drawn from generated coloured squares."""

import io

import pytest
from PIL import Image, ImageChops

from modaclip.core.errors import ModaclipError
from modaclip.search.grid import (
    HIGHLIGHT_COLOUR,
    PLACEHOLDER_COLOUR,
    GridCell,
    retrieval_grid,
    save_png_atomic,
)

RED = (200, 30, 30)


def square_png(colour: tuple[int, int, int] = RED, size: tuple[int, int] = (40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def cells(count: int, highlighted: int | None = None) -> list[GridCell]:
    return [GridCell(square_png(), f"0.{90 - i}  item {i}", i == highlighted) for i in range(count)]


def test_width_follows_the_longest_row_and_height_the_number_of_rows():
    one_by_one = retrieval_grid([("q", cells(1))]).size
    one_by_two = retrieval_grid([("q", cells(2))]).size
    one_by_three = retrieval_grid([("q", cells(3))]).size
    two_rows = retrieval_grid([("q", cells(3)), ("r", cells(1))]).size
    three_rows = retrieval_grid([("q", cells(1)), ("r", cells(1)), ("s", cells(1))]).size

    column_pitch = one_by_two[0] - one_by_one[0]
    assert column_pitch > 112
    assert one_by_three == (one_by_two[0] + column_pitch, one_by_one[1])
    row_pitch = two_rows[1] - one_by_one[1]
    assert row_pitch > 112
    assert two_rows[0] == one_by_three[0]
    assert three_rows[1] == one_by_one[1] + 2 * row_pitch


def test_larger_thumbnails_make_a_larger_grid():
    small = retrieval_grid([("q", cells(2))], thumb=64).size
    large = retrieval_grid([("q", cells(2))], thumb=128).size
    assert large[0] > small[0] and large[1] > small[1]


def test_a_row_without_cells_is_just_its_label():
    assert retrieval_grid([("text only", [])]).size[0] < retrieval_grid([("q", cells(1))]).size[0]


def test_highlight_border_surrounds_the_highlighted_thumbnail():
    plain = retrieval_grid([("q", cells(2))], thumb=96)
    boxes = []
    for highlighted in (0, 1):
        grid = retrieval_grid([("q", cells(2, highlighted))], thumb=96)
        box = ImageChops.difference(grid, plain).getbbox()
        assert box is not None and (box[2] - box[0], box[3] - box[1]) == (96, 96)
        left, top, right, bottom = box
        for corner in [(left, top), (right - 1, top), (left, bottom - 1), (right - 1, bottom - 1)]:
            assert grid.getpixel(corner) == HIGHLIGHT_COLOUR
        assert grid.getpixel(((left + right) // 2, (top + bottom) // 2)) == RED
        boxes.append(box)
    first, second = boxes
    assert second[1] == first[1]
    assert second[0] - first[0] > 96


def test_unreadable_image_bytes_become_a_placeholder():
    truncated = square_png()[:60]
    rows = [("q", [GridCell(b"not an image", "broken"), GridCell(truncated, "truncated")])]
    grid = retrieval_grid(rows)
    colours = {colour for _, colour in grid.getcolors(maxcolors=grid.width * grid.height)}
    assert PLACEHOLDER_COLOUR in colours


def test_pil_images_and_transparency_are_drawn_on_white():
    transparent = Image.new("RGBA", (30, 30), (0, 0, 0, 0))
    grid = retrieval_grid([("q", [GridCell(transparent, "clear")])])
    colours = {colour for _, colour in grid.getcolors(maxcolors=grid.width * grid.height)}
    assert (0, 0, 0) not in colours


def test_long_captions_and_labels_stay_inside_the_grid():
    rows = [("word " * 300, [GridCell(square_png(), "x" * 500)])]
    grid = retrieval_grid(rows)
    assert grid.size == retrieval_grid([("q", [GridCell(square_png(), "x")])]).size
    right_edge = grid.crop((grid.width - 4, 0, grid.width, grid.height))
    assert right_edge.getcolors() == [(4 * grid.height, (255, 255, 255))]


def test_retrieval_grid_rejects_no_rows():
    with pytest.raises(ModaclipError, match="at least one row"):
        retrieval_grid([])


def test_save_png_atomic_creates_directories_and_leaves_no_temporary_file(tmp_path):
    image = retrieval_grid([("q", cells(2, 1))])
    path = tmp_path / "metrics" / "examples.png"
    save_png_atomic(image, path)
    save_png_atomic(image, str(path))  # overwriting works too
    assert [p.name for p in path.parent.iterdir()] == ["examples.png"]
    with Image.open(path) as written:
        assert written.format == "PNG"
        assert ImageChops.difference(written.convert("RGB"), image).getbbox() is None


def test_save_png_atomic_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "examples.png"
    save_png_atomic(Image.new("RGB", (4, 4), RED), path)
    with pytest.raises(OSError):
        save_png_atomic(Image.new("CMYK", (4, 4)), path)  # PNG cannot hold CMYK
    assert [p.name for p in tmp_path.iterdir()] == ["examples.png"]
    with Image.open(path) as kept:
        assert kept.getpixel((0, 0)) == RED
