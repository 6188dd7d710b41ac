"""Result images are encoded fast (once per NG frame on the live path) and never altered."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.engine.results_store import encode_image


def _decoded(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


@pytest.mark.parametrize("kind", ["gray", "colour", "near-gray colour (an MJPG frame's chroma rounding)"])
def test_a_result_image_comes_back_pixel_for_pixel(kind):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    image = {"gray": gray, "colour": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)}.get(kind)
    if image is None:
        image = np.repeat(gray[..., None], 3, axis=2)
        image[::7, ::5, 0] ^= 1  # channels one grey level apart here and there: not gray, kept in colour
    encoded = encode_image(image, ".png")
    assert encoded.suffix == ".png"
    np.testing.assert_array_equal(_decoded(encoded.data), image)


def test_a_colour_frame_with_equal_channels_is_kept_as_the_same_gray():
    gray = np.random.default_rng(1).integers(0, 256, (32, 40), dtype=np.uint8)
    decoded = _decoded(encode_image(np.repeat(gray[..., None], 3, axis=2), ".png").data)
    assert decoded.ndim == 2
    np.testing.assert_array_equal(decoded, gray)


def test_an_image_that_cannot_be_encoded_says_why_in_one_line():
    with pytest.raises(ValueError, match="8-bit"):
        encode_image(np.zeros((8, 8), np.float32), ".png")
