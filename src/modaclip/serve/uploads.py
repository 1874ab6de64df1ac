"""Uploaded images for the HTTP API: read in memory under a size cap and a deadline, decoded only if safe.

Starlette parses multipart bodies into temporary files that spill to disk past 1 MB; here the
body is capped at the upload limit while it streams in and the file part is kept in memory, so
an upload never touches the disk and never grows past the limit. The bytes held count against
the server's `UploadBudget`, and the whole body must arrive within a deadline, so slow clients
cannot hold memory or a request slot for long. Only the formats in ALLOWED_FORMATS are decoded
(no other Pillow plugin, EPS's Ghostscript included, ever sees an upload), and Pillow's
decompression-bomb check and our own pixel cap stop a small file that would decode into gigabytes.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from modaclip.serve.limits import MAX_FORM_FIELDS, MAX_IMAGE_PIXELS
from modaclip.serve.overload import UploadAccount, UploadBudget

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


class UploadError(Exception):
    """A bad upload, with the HTTP status that says why (413 too large, 415 wrong type, 408 too slow, 400 broken,
    499 abandoned by its client)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@asynccontextmanager
async def upload_form(
    request: Request, max_bytes: int, timeout_s: float, budget: UploadBudget
) -> AsyncIterator[FormData]:
    """The multipart form of a request, its file parts held in memory (and in `budget`) until the block ends.

    At most `max_bytes` are read, all within `timeout_s`; a declared Content-Length over the cap is
    refused before any of the body is read.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UploadError(
            415, f"send the image as multipart/form-data (field 'image'), not {content_type or 'no content type'}"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise UploadError(413, f"upload of {int(declared)} bytes is over the limit of {max_bytes} bytes")
    with budget.account() as account:
        if declared.isdigit():
            account.take(int(declared))
        parser = MultiPartParser(
            request.headers,
            _capped(request.stream(), max_bytes, account),
            max_files=1,
            max_fields=MAX_FORM_FIELDS,
        )
        parser.spool_max_size = max_bytes + 1  # the whole body is capped below this, so files never spill to disk
        try:
            with anyio.fail_after(timeout_s):
                form = await parser.parse()
        except TimeoutError as err:
            raise UploadError(408, f"upload not received whole within {timeout_s:g} s") from err
        except MultiPartException as err:
            raise UploadError(400, f"bad multipart upload: {err}") from err
        except ClientDisconnect as err:  # nobody reads the answer; the status tells the access log and /metrics
            raise UploadError(499, "the client closed the connection before its upload arrived whole") from err
        try:
            yield form
        finally:
            await form.close()


async def _capped(chunks: AsyncIterator[bytes], max_bytes: int, account: UploadAccount) -> AsyncIterator[bytes]:
    """The request body, stopped with 413 as soon as it passes `max_bytes` (Content-Length can lie or be absent)."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise UploadError(413, f"upload is over the limit of {max_bytes} bytes")
        if received > account.taken:
            account.take(received - account.taken)
        yield chunk


async def image_bytes(form: FormData, name: str = "image") -> bytes:
    """The bytes of the form's image file, not yet checked (`check_image`, on a worker thread)."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise UploadError(400, f"no image file in form field {name!r}")
    data = await upload.read()
    if not data:
        raise UploadError(400, "the uploaded image is empty")
    return data


def check_image(data: bytes) -> bytes:
    """The bytes, once they decode whole as a reasonably sized image in an allowed format.

    Pillow's decoders raise many types on hostile bytes (OSError, EOFError, struct.error,
    ValueError, SyntaxError, ...); every one is the upload's fault, so every one is a 400.
    """
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise UploadError(
                    413, f"image of {width}x{height} pixels is over the limit of {MAX_IMAGE_PIXELS} pixels"
                )
            image.load()
    except UploadError:
        raise
    except Image.DecompressionBombError as err:
        raise UploadError(413, f"image is over the limit of {MAX_IMAGE_PIXELS} pixels (decompression bomb)") from err
    except UnidentifiedImageError as err:
        raise UploadError(415, f"not a readable image (accepted: {', '.join(ALLOWED_FORMATS)})") from err
    except Exception as err:
        raise UploadError(400, f"not a readable image ({err.__class__.__name__})") from err
    return data
