"""Result images are encoded fast (once per NG frame on the live path) and read back unaltered."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.data.images import read_image
from inspector.engine.results_store import encode_image


def _read_back(image: np.ndarray, tmp_path) -> np.ndarray:
    """The image as the history reads it from the file the store writes."""
    encoded = encode_image(image, ".png")
    path = tmp_path / f"result{encoded.suffix}"
    path.write_bytes(encoded.data)
    return read_image(path)


def _near_gray(gray: np.ndarray) -> np.ndarray:
    """Channels one grey level apart here and there (an MJPG frame's chroma rounding): colour, not gray."""
    image = np.repeat(gray[..., None], 3, axis=2)
    image[::7, ::5, 0] ^= 1
    return image


RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 256, (48, 64), dtype=np.uint8)
IMAGES = {"gray": GRAY, "colour": RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8), "near-gray colour": _near_gray(GRAY)}


@pytest.mark.parametrize("kind", IMAGES)
def test_a_result_image_comes_back_pixel_for_pixel(kind, tmp_path):
    np.testing.assert_array_equal(_read_back(IMAGES[kind], tmp_path), IMAGES[kind])


def test_a_colour_frame_with_equal_channels_is_kept_as_the_same_gray(tmp_path):
    decoded = _read_back(np.repeat(GRAY[..., None], 3, axis=2), tmp_path)
    assert decoded.ndim == 2
    np.testing.assert_array_equal(decoded, GRAY)


def test_an_image_that_cannot_be_encoded_says_why_in_one_line():
    with pytest.raises(ValueError, match="8-bit"):
        encode_image(np.zeros((8, 8), np.float32), ".png")
