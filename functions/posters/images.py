"""The image work of the filters, without S3 or SQS: what an upload must be, its clean copy, its WebP sizes.

Bytes in, bytes out; every way an upload can be unacceptable raises :class:`Rejected` with a reason a person
can act on. Dimensions are checked from the header, before any pixel is decoded: ``Image.open`` reads only
the header, so a decompression bomb (a small file that declares 20000 x 20000 pixels) is refused without
allocating its pixels. Pillow's own guard (``Image.MAX_IMAGE_PIXELS``) stays on as the backstop.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

from contract import posters as C

from .common import Rejected

# Pillow refuses (DecompressionBombError) above twice this at open, whoever calls it; between once and twice
# it only warns, and the checks below reject those images themselves, with a reason, before decoding them.
Image.MAX_IMAGE_PIXELS = C.MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

#: What re-encoding keeps of each format's quality (the pixels are re-encoded once, then resized to WebP).
_SAVE_OPTIONS = {"PNG": {"compress_level": 6}, "JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
#: WebP quality of the published sizes.
WEBP_QUALITY = 82
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


def sniff(data: bytes) -> str | None:
    """The image format the bytes really are (``PNG``, ``JPEG``, ``WEBP``), from their magic bytes; or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_declared(content_type: str, size: int) -> str:
    """The format an upload of ``content_type`` and ``size`` bytes must be; Rejected when S3 should have refused
    it already (the presigned POST's conditions: S3 enforces them, the emulator does not)."""
    if size <= 0:
        raise Rejected("the file is empty")
    if size > C.MAX_UPLOAD_BYTES:
        raise Rejected(f"the file is larger than {C.MAX_UPLOAD_BYTES // (1024 * 1024)} MiB ({size} bytes)")
    expected = C.CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
    if expected is None:
        allowed = ", ".join(C.CONTENT_TYPES)
        raise Rejected(f"content type {content_type or 'none'!r} is not accepted (use {allowed})")
    return expected


def _check_dimensions(width: int, height: int) -> None:
    if width > C.MAX_SIDE or height > C.MAX_SIDE or width * height > C.MAX_PIXELS:
        raise Rejected(
            f"the image is too large: {width} x {height} pixels (at most {C.MAX_SIDE} per side and "
            f"{C.MAX_PIXELS // 1_000_000} million pixels in all)"
        )
    if width < C.MIN_SIDE or height < C.MIN_SIDE:
        raise Rejected(f"the image is too small: {width} x {height} pixels (at least {C.MIN_SIDE} per side)")


def open_image(data: bytes, expected: str) -> Image.Image:
    """The decoded image: its magic bytes must say ``expected`` and its header acceptable dimensions."""
    actual = sniff(data)
    if actual != expected:
        looks = f"it looks like a {actual} image" if actual else "it is not an image"
        raise Rejected(f"the file is not a {expected} image ({looks})")
    try:
        image = Image.open(io.BytesIO(data), formats=[expected])  # the header only
    except Image.DecompressionBombError:
        raise Rejected(
            f"the image is too large: its header declares more than {2 * C.MAX_PIXELS // 1_000_000} million "
            f"pixels (at most {C.MAX_SIDE} per side and {C.MAX_PIXELS // 1_000_000} million in all)"
        ) from None
    except _READ_ERRORS:
        raise Rejected(f"the file is damaged: not a readable {expected} image") from None
    _check_dimensions(*image.size)
    try:
        image.load()
    except _READ_ERRORS:
        raise Rejected(f"the file is damaged or incomplete: not a readable {expected} image") from None
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _pixels_only(image: Image.Image, allow_alpha: bool) -> Image.Image:
    """A copy holding pixels and nothing else: EXIF orientation applied, then RGB(A), no info (EXIF, ICC, text)."""
    upright = ImageOps.exif_transpose(image)
    mode = "RGBA" if allow_alpha and _has_alpha(upright) else "RGB"
    clean = upright.convert(mode)
    clean.info = {}  # PNG and WebP would otherwise write an ICC profile (and PNG text) found here
    return clean


def clean_copy(data: bytes, expected: str) -> bytes:
    """The upload re-encoded in its own format from its pixels alone: no EXIF (GPS, camera), no ICC profile,
    no text chunks; EXIF orientation applied to the pixels first (the tag that said how goes with it)."""
    image = open_image(data, expected)
    try:
        clean = _pixels_only(image, allow_alpha=expected != "JPEG")
    except (OSError, ValueError):
        raise Rejected(f"the {expected} image uses a pixel format that cannot be converted to RGB") from None
    out = io.BytesIO()
    clean.save(out, expected, **_SAVE_OPTIONS[expected])
    return out.getvalue()


def webp_sizes(data: bytes) -> dict[str, bytes]:
    """One WebP per ``contract.posters.SIZES`` entry: fitted into its box, aspect ratio kept, never enlarged."""
    expected = sniff(data)
    if expected is None:
        raise ValueError("the validated image is not an image")  # validate wrote it: a bug, not a user error
    image = _pixels_only(open_image(data, expected), allow_alpha=True)
    sizes = {}
    for name, box in C.SIZES.items():
        copy = image.copy()
        copy.thumbnail(box, Image.Resampling.LANCZOS)  # shrinks only
        out = io.BytesIO()
        copy.save(out, C.PUBLISHED_FORMAT, quality=WEBP_QUALITY, method=4)
        sizes[name] = out.getvalue()
    return sizes
