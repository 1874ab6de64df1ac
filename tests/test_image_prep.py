import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modaclip.core.schema import CATALOG_COLUMNS
from modaclip.curate.cleaning import CatalogCleaner
from modaclip.curate.image_prep import decode_rgb, fit_on_white


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def palette_image(transparent: bool) -> bytes:
    image = Image.new("P", (40, 40), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    image.paste(0, (0, 0, 20, 40))
    return encoded(image, transparency=0) if transparent else encoded(image)


def grey16() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 40).astype(np.uint16), (40, 1))
    return encoded(Image.fromarray(ramp))


def test_rgba_is_composited_on_white() -> None:
    image = Image.new("RGBA", (40, 40), (200, 30, 30, 255))
    image.paste((0, 0, 0, 0), (0, 0, 20, 40))

    decoded = decode_rgb(encoded(image))

    assert decoded.mode == "RGBA"
    assert decoded.rgb.mode == "RGB"
    assert decoded.rgb.getpixel((5, 5)) == (255, 255, 255)
    assert decoded.rgb.getpixel((30, 5)) == (200, 30, 30)


@pytest.mark.parametrize(("transparent", "left"), [(False, (0, 0, 0)), (True, (255, 255, 255))])
def test_palette_keeps_colours_and_transparency_turns_white(transparent: bool, left: tuple) -> None:
    decoded = decode_rgb(palette_image(transparent))

    assert decoded.mode == "P"
    assert decoded.rgb.getpixel((5, 5)) == left
    assert decoded.rgb.getpixel((30, 5)) == (200, 30, 30)


def test_sixteen_bit_grey_is_scaled_to_eight_bits() -> None:
    decoded = decode_rgb(grey16())

    assert decoded.mode.startswith("I")
    row = np.asarray(decoded.rgb)[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row.astype(int)) >= 0), "the ramp must stay a ramp, not wrap around"


def test_cmyk_and_greyscale_jpegs_become_rgb() -> None:
    cmyk = decode_rgb(encoded(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"))
    grey = decode_rgb(encoded(Image.new("L", (40, 40), 128), "JPEG"))

    assert cmyk.mode == "CMYK" and grey.mode == "L"
    red, green, blue = cmyk.rgb.getpixel((20, 20))
    assert red > 200 and green < 60 and blue < 60
    assert grey.rgb.getpixel((20, 20)) == pytest.approx((128, 128, 128), abs=2)


def test_truncated_jpeg_is_unreadable() -> None:
    data = encoded(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG")

    assert decode_rgb(data[: len(data) // 2]) == "unreadable_image"
    assert decode_rgb(b"not an image") == "unreadable_image"


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encoded(Image.new("RGB", (60, 60), "white"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60 * 60 - 1)  # over the limit: a warning

    assert decode_rgb(data) == "decompression_bomb"

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # over twice the limit: an error
    assert decode_rgb(data) == "decompression_bomb"


def test_fit_on_white_keeps_aspect_and_pads() -> None:
    wide = Image.new("RGB", (200, 100), (10, 10, 200))

    fitted = fit_on_white(wide, 64)

    assert fitted.size == (64, 64)
    assert fitted.getpixel((32, 2)) == (255, 255, 255)  # padding above
    assert fitted.getpixel((32, 32)) == pytest.approx((10, 10, 200), abs=3)


def test_cleaner_converts_modes_counts_them_and_stores_small_jpegs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300)
    images = {
        1: encoded(Image.new("RGB", (90, 60), (200, 30, 30)), "JPEG"),
        2: encoded(Image.new("RGBA", (40, 40), (0, 0, 0, 0))),
        3: palette_image(transparent=False),
        4: encoded(Image.new("L", (40, 40), 90)),
        5: encoded(Image.new("CMYK", (40, 40), (0, 0, 0, 255)), "JPEG"),
        6: grey16(),
        7: encoded(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG")[:300],
        8: encoded(Image.new("RGB", (700, 700), "white"), "JPEG"),
    }
    chunk = pd.DataFrame(
        [
            {"id": i, "gender": "Men", "articleType": "Tshirts", "baseColour": "Red", "image": data}
            for i, data in images.items()
        ],
    ).reindex(columns=list(CATALOG_COLUMNS))
    cleaner = CatalogCleaner(["gender"], min_image_side=16, image_size=48)

    kept = cleaner.clean(chunk)

    assert kept["id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert cleaner.dropped["unreadable_image"] == 1
    assert cleaner.dropped["decompression_bomb"] == 1
    assert cleaner.summary()["converted"] == {"CMYK": 1, "I;16": 1, "L": 1, "P": 1, "RGBA": 1}
    assert kept.set_index("id").loc[1, ["image_width", "image_height"]].tolist() == [90, 60]
    for data in kept["image"]:
        with Image.open(io.BytesIO(data)) as stored:
            assert (stored.format, stored.mode, stored.size) == ("JPEG", "RGB", (48, 48))
    with Image.open(io.BytesIO(kept["image"].iloc[1])) as transparent:
        assert transparent.getpixel((24, 24)) == pytest.approx((255, 255, 255), abs=2)
