"""Uploaded images for the HTTP API: read in memory under a size cap, decoded only if safe.

Starlette parses multipart bodies into temporary files that spill to disk past 1 MB; here the
body is capped at the upload limit while it streams in and the file part is kept in memory, so
an upload never touches the disk and never grows past the limit. Pillow's decompression-bomb
check and our own pixel cap stop a small file that would decode into gigabytes.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

from PIL import Image, UnidentifiedImageError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: any real product photo; a bomb is refused before decoding
MAX_FORM_FIELDS = 200  # bounds the labels a classify request can send


class UploadError(Exception):
    """A bad upload, with the HTTP status that says why (413 too large, 415 wrong type, 400 broken)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_form(request: Request, max_bytes: int) -> FormData:
    """The multipart form of a request, its file parts held in memory; at most `max_bytes` are read."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UploadError(
            415, f"send the image as multipart/form-data (field 'image'), not {content_type or 'no content type'}"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UploadError(413, f"upload of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    parser = MultiPartParser(
        request.headers, _capped(request.stream(), max_bytes), max_files=1, max_fields=MAX_FORM_FIELDS
    )
    parser.spool_max_size = max_bytes + 1  # the whole body is capped below this, so files never spill to disk
    try:
        return await parser.parse()
    except MultiPartException as err:
        raise UploadError(400, f"bad multipart upload: {err}") from err


async def _capped(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The request body, stopped with 413 as soon as it passes `max_bytes` (Content-Length can lie or be absent)."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise UploadError(413, f"upload is over the limit of {max_bytes} bytes")
        yield chunk


async def image_field(form: FormData, name: str = "image") -> bytes:
    """The bytes of the form's image file, checked to decode as a reasonably sized image."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise UploadError(400, f"no image file in form field {name!r}")
    data = await upload.read()
    check_image(data)
    return data


def check_image(data: bytes) -> None:
    """Refuse what is not an image, a truncated image and a decompression bomb, before the model decodes it."""
    if not data:
        raise UploadError(400, "the uploaded image is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise UploadError(
                    413, f"image of {width}x{height} pixels is over the limit of {MAX_IMAGE_PIXELS} pixels"
                )
            image.load()
    except Image.DecompressionBombError as err:
        raise UploadError(413, f"image is over the limit of {MAX_IMAGE_PIXELS} pixels (decompression bomb)") from err
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UploadError(
            415 if isinstance(err, UnidentifiedImageError) else 400, f"not a readable image ({err.__class__.__name__})"
        ) from err
