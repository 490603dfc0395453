"""Image files: the pixel cap checked from the header, decoding (OpenCV), reading a pair, PNG encoding.

**Pixel cap.** Before a file is decoded its header is read (:func:`image_header`) and a file
declaring more than ``max_pixels`` pixels (default :data:`MAX_IMAGE_PIXELS`, 100 million, e.g.
10000 x 10000; ``--max-pixels`` on the command line) is refused as a bad pair, like Pillow's
``MAX_IMAGE_PIXELS``: a 74-byte PNG may declare 30000 x 30000 16-bit RGBA pixels, 7.2 GB once
decoded.  The sizes are read exactly from the PNG ``IHDR`` chunk, the JPEG start-of-frame segment,
the first TIFF (or BigTIFF) image directory and the BMP info header.  The format is recognised
from the content, not the file name (OpenCV decodes by content); content in any other format is
refused, since its decoded size cannot be told in advance.  Files larger than
``8 * max_pixels`` bytes + 16 MiB (more than any uncompressed 16-bit RGBA image under the cap) and
anything but regular files (FIFOs, devices) are refused without reading them.

Accepted pixels: 8- or 16-bit, grey or colour; an image's alpha channel is dropped; colour masks
must have equal channels.  Outputs are always PNG (lossless, 16-bit capable).
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from .errors import PairError
from .pairs import Pair
from .paths import shown

__all__ = ["MAX_IMAGE_PIXELS", "Header", "encode_png", "image_header", "noise_channels", "read_image_file", "read_pair"]

#: Default pixel cap (width x height) of an input file, checked from its header before decoding.
MAX_IMAGE_PIXELS = 100_000_000
_SLACK_BYTES = 16 << 20

_PNG = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (C0-CF but DHT C4, JPG C8, DAC CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class Header:
    """What a file's header declares: its format and its size in pixels."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError("the header is cut short")
    return data


def _png(f: BinaryIO) -> Header:
    f.seek(8)
    length, kind = struct.unpack(">I4s", _read(f, 8))
    if kind != b"IHDR" or length < 8:
        raise ValueError("no IHDR chunk first")
    width, height = struct.unpack(">II", _read(f, 8))
    return Header("PNG", width, height)


def _jpeg(f: BinaryIO) -> Header:
    f.seek(2)
    while True:
        byte = _read(f, 1)
        if byte != b"\xff":
            raise ValueError("a segment does not start with 0xFF")
        marker = _read(f, 1)[0]
        while marker == 0xFF:  # fill bytes
            marker = _read(f, 1)[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # TEM, RSTn, SOI: no length
            continue
        if marker in (0xD9, 0xDA):
            raise ValueError("no start-of-frame segment before the image data")
        (length,) = struct.unpack(">H", _read(f, 2))
        if length < 2:
            raise ValueError("a segment length below 2")
        if marker in _SOF:
            _precision, height, width = struct.unpack(">BHH", _read(f, 5))
            if height == 0:
                raise ValueError("the height is left to a DNL segment (not supported)")
            return Header("JPEG", width, height)
        f.seek(length - 2, os.SEEK_CUR)


def _tiff(f: BinaryIO) -> Header:
    f.seek(0)
    order = "<" if _read(f, 2) == b"II" else ">"
    (version,) = struct.unpack(order + "H", _read(f, 2))
    if version == 42:
        (offset,) = struct.unpack(order + "I", _read(f, 4))
        count_fmt, entry_fmt, entry_size = "H", "HHI4s", 12
    elif version == 43:  # BigTIFF
        size, _zero, offset = struct.unpack(order + "HHQ", _read(f, 12))
        if size != 8:
            raise ValueError("BigTIFF with an offset size other than 8")
        count_fmt, entry_fmt, entry_size = "Q", "HHQ8s", 20
    else:
        raise ValueError(f"TIFF version {version}")
    f.seek(offset)
    (count,) = struct.unpack(order + count_fmt, _read(f, struct.calcsize(count_fmt)))
    if count > 4096:
        raise ValueError(f"{count} entries in the first image directory")
    sizes = {}
    scalar = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
    for _ in range(count):
        tag, kind, n, value = struct.unpack(order + entry_fmt, _read(f, entry_size))
        if tag in (256, 257) and kind in scalar and n == 1:
            sizes[tag] = struct.unpack_from(order + scalar[kind], value)[0]
    if 256 not in sizes or 257 not in sizes:
        raise ValueError("no ImageWidth / ImageLength tags in the first image directory")
    return Header("TIFF", sizes[256], sizes[257])


def _bmp(f: BinaryIO) -> Header:
    f.seek(14)
    (size,) = struct.unpack("<I", _read(f, 4))
    if size == 12:
        width, height = struct.unpack("<HH", _read(f, 4))
    elif size >= 16:
        width, height = struct.unpack("<ii", _read(f, 8))
    else:
        raise ValueError(f"an info header of {size} bytes")
    return Header("BMP", abs(width), abs(height))


def image_header(f: BinaryIO) -> Header:
    """The format and declared size of the image in ``f`` (``ValueError`` if it is not a PNG/JPEG/TIFF/BMP)."""
    f.seek(0)
    magic = f.read(8)
    if magic.startswith(_PNG):
        return _png(f)
    if magic.startswith(b"\xff\xd8\xff"):
        return _jpeg(f)
    if magic[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff(f)
    if magic.startswith(b"BM"):
        return _bmp(f)
    raise ValueError("the content is not PNG, JPEG, TIFF or BMP")


def read_image_file(path: str | os.PathLike, rel: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode one file (``rel`` names it in messages): the header checks first, then OpenCV."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        raise PairError(f"{shown(rel)}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PairError(f"{shown(rel)}: not a regular file")
        if info.st_size > 8 * max_pixels + _SLACK_BYTES:
            raise PairError(f"{shown(rel)}: {info.st_size} bytes, more than any image under the pixel cap")
        try:
            header = image_header(f)
        except (ValueError, struct.error, OSError) as exc:
            raise PairError(f"{shown(rel)}: not a readable PNG/JPEG/TIFF/BMP image ({exc})") from None
        if header.width == 0 or header.height == 0:
            raise PairError(f"{shown(rel)}: the {header.format} header declares an empty image")
        if header.pixels > max_pixels:
            raise PairError(
                f"{shown(rel)}: the {header.format} header declares {header.width}x{header.height} pixels, over the "
                f"cap of {max_pixels} (--max-pixels)"
            )
        try:
            f.seek(0)
            data = np.frombuffer(f.read(), dtype=np.uint8)
        except OSError as exc:
            raise PairError(f"{shown(rel)}: cannot read ({exc.strerror or exc})") from None
    try:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
        raise PairError(f"{shown(rel)}: not a readable {header.format} image ({shown(reason)})") from None
    if array is None:
        raise PairError(f"{shown(rel)}: not a readable PNG/JPEG/TIFF/BMP image")
    if array.shape[0] * array.shape[1] > max_pixels:  # the decoder disagreed with the header
        raise PairError(f"{shown(rel)}: decoded to {array.shape[1]}x{array.shape[0]} pixels, over the cap")
    if array.dtype not in (np.uint8, np.uint16):
        raise PairError(f"{shown(rel)}: {array.dtype} pixels are not supported; accepted: 8- or 16-bit")
    return array


def _read_image(root: Path, rel: str, max_pixels: int) -> np.ndarray:
    image = read_image_file(root / rel, rel, max_pixels)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]  # alpha is not an intensity: dropped
    if image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[..., 0]
    return np.ascontiguousarray(image)


def _read_mask(root: Path, rel: str, max_pixels: int) -> np.ndarray:
    mask = read_image_file(root / rel, rel, max_pixels)
    if mask.ndim == 3:
        channels = mask[..., : 3 if mask.shape[2] == 4 else mask.shape[2]]
        if not (channels == channels[..., :1]).all():
            raise PairError(f"{shown(rel)}: colour mask with differing channels; expected a grey label image")
        mask = channels[..., 0]
    return np.ascontiguousarray(mask)


def read_pair(in_dir: str | os.PathLike, pair: Pair, *, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """The image ``(H, W)`` / ``(H, W, C)`` (channels as stored, BGR) and its label mask ``(H, W)``.

    Several mask files are merged by a pixelwise maximum.  :class:`PairError` says what is wrong.
    """
    root = Path(in_dir)
    image = _read_image(root, pair.image, max_pixels)
    mask = _read_mask(root, pair.masks[0], max_pixels)
    for extra in pair.masks[1:]:
        more = _read_mask(root, extra, max_pixels)
        if more.shape != mask.shape:
            raise PairError(f"{shown(extra)}: mask is {_size(more)} but {shown(pair.masks[0])} is {_size(mask)}")
        mask = np.maximum(mask, more)
    if image.shape[:2] != mask.shape:
        raise PairError(
            f"{shown(pair.image)}: image is {_size(image)} but mask {shown(pair.masks[0])} is {_size(mask)}"
        )
    return image, mask


def _size(a: np.ndarray) -> str:
    return f"{a.shape[0]}x{a.shape[1]} (HxW)"


def encode_png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for an array of shape {array.shape} and dtype {array.dtype}")
    return buf.tobytes()


def noise_channels(image: np.ndarray) -> str:
    """The noise channel mode for a decoded file (SPEC §3 "Channels"): ``"shared"`` when it has
    several channels that are all equal (a grey image stored as RGB, like the BUSI PNGs, stays
    grey and is written back as it came), else ``"independent"``.  Replay derives the same mode
    from the same input, so it needs no record."""
    if image.ndim == 3 and image.shape[2] > 1 and (image == image[..., :1]).all():
        return "shared"
    return "independent"
