"""Read a PNG's pixels with zlib and numpy (no imaging library in the lock file).

Enough for the PNGs Chromium writes (8-bit RGB/RGBA, not interlaced): used to check that
an export is not blank and that its Chinese text is drawn as glyphs.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # grey, RGB, grey+alpha, RGBA


def read_png(data: bytes) -> np.ndarray:
    """The image as an (height, width, channels) uint8 array."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file")
    pos, idat, header = len(SIGNATURE), [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in CHANNELS or interlace:
        raise ValueError(
            f"unsupported PNG (bit depth {depth}, colour type {color}, interlace {interlace})"
        )
    bpp = CHANNELS[color]
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    raw = raw.reshape(height, stride + 1)
    filters, rows = raw[:, 0], raw[:, 1:].astype(np.int32)
    out = np.zeros((height, stride), dtype=np.int32)
    previous = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        line, kind = rows[y], filters[y]
        if kind == 0:
            current = line
        elif kind == 1:  # Sub: a running sum per channel
            current = np.cumsum(line.reshape(width, bpp), axis=0).reshape(stride) & 0xFF
        elif kind == 2:  # Up
            current = (line + previous) & 0xFF
        elif kind in (3, 4):
            current = _sequential(line, previous, bpp, kind)
        else:
            raise ValueError(f"PNG row {y}: unknown filter {kind}")
        out[y] = current
        previous = current
    return out.reshape(height, width, bpp).astype(np.uint8)


def _sequential(line: np.ndarray, up: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """Average and Paeth depend on the pixel to the left: one pixel at a time."""
    current = np.zeros_like(line)
    for x in range(0, len(line), bpp):
        b = up[x : x + bpp]
        if x == 0:
            a = c = np.zeros(bpp, dtype=np.int32)
        else:
            a, c = current[x - bpp : x], up[x - bpp : x]
        if kind == 3:
            predictor = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
            predictor = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        current[x : x + bpp] = (line[x : x + bpp] + predictor) & 0xFF
    return current


def ink(image: np.ndarray, background=(255, 255, 255), tolerance: int = 24) -> float:
    """Share of pixels that differ from the background: 0.0 is a blank image."""
    rgb = image[..., :3].astype(np.int32)
    distance = np.abs(rgb - np.array(background[:3], dtype=np.int32)).max(axis=-1)
    visible = distance > tolerance
    if image.shape[-1] == 4:
        visible &= image[..., 3] > 0
    return float(visible.mean())
