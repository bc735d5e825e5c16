"""Images for the filters' tests, made here (Pillow, or byte by byte where Pillow would refuse to write them)."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import ExifTags, Image, ImageCms

#: Where a phone would say the photo was taken (the validate filter must drop it).
GPS = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (52.0, 22.0, 7.0),
       ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (4.0, 53.0, 41.0)}


def _noisy(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """An image whose pixels do not compress away (a truncated file then really lacks pixel data)."""
    rng = random.Random(width * 10_000 + height)
    return Image.frombytes(mode, (width, height), rng.randbytes(width * height * len(mode)))


def image_bytes(fmt: str, width: int = 300, height: int = 450, mode: str = "RGB", **options) -> bytes:
    """A real PNG, JPEG or WEBP file of that size."""
    out = io.BytesIO()
    _noisy(width, height, mode).save(out, fmt, **options)
    return out.getvalue()


def srgb_profile() -> bytes:
    """An ICC profile (sRGB) to embed."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def jpeg_with_metadata(width: int = 300, height: int = 450, orientation: int | None = None) -> bytes:
    """A JPEG carrying EXIF (camera, GPS position, optionally an orientation) and an ICC profile."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Phone 12"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    return image_bytes("JPEG", width, height, exif=exif.tobytes(), icc_profile=srgb_profile())


def png_with_text(width: int = 300, height: int = 450) -> bytes:
    """A PNG with text chunks (author, comment) and an ICC profile."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Jane Doe, 12 Secret Lane")
    info.add_text("Comment", "taken at home")
    return image_bytes("PNG", width, height, pnginfo=info, icc_profile=srgb_profile())


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def header_only_png(width: int, height: int) -> bytes:
    """A valid-looking PNG declaring ``width`` x ``height`` RGB pixels with almost no pixel data: a
    decompression bomb's header (decoding it would allocate width * height * 3 bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * min(width, 1000)))  # part of one row
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first part of a file (an upload cut off)."""
    return data[: int(len(data) * keep)]
