"""The one place images become model input and model output becomes images.

NumPy does the arithmetic for every runtime backend (torch wraps the same arrays), so an
exported model's input is bit for bit the torch model's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch only where a torch model is trained or scored
    from torch import Tensor

Size = int | tuple[int, int]  # square side, or (height, width)

NORMALISATION = {"range": [-1.0, 1.0], "resize": "area down, linear up", "formula": "pixel / 127.5 - 1"}


def resize_to_model(image: np.ndarray, size: Size, channels: int) -> np.ndarray:
    """uint8 gray/RGB(A) image of any size → uint8 (H, W) or (H, W, 3) at the model's input size."""
    h, w = (size, size) if isinstance(size, int) else size
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if channels == 1 and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif channels == 3 and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[:2] != (h, w):
        shrinking = image.shape[0] * image.shape[1] > h * w
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(image)


_SCALE = np.float32(2.0 / 255.0)
_ONE = np.float32(1.0)


def to_array(images_u8: Sequence[np.ndarray]) -> np.ndarray:
    """Model-size uint8 images → float32 (B, C, H, W) in [-1, 1]: pixel × (2/255) − 1 in float32."""
    array = np.stack([im[None] if im.ndim == 2 else im.transpose(2, 0, 1) for im in images_u8])
    return array.astype(np.float32) * _SCALE - _ONE


def to_tensor(images_u8: Sequence[np.ndarray]) -> Tensor:
    """Model-size uint8 images → float (B, C, H, W) in [-1, 1] (``to_array``'s values)."""
    import torch

    return torch.from_numpy(to_array(images_u8))


def to_batch(images: Sequence[np.ndarray], size: Size, channels: int) -> Tensor:
    """Images of any size → float (B, C, H, W) in [-1, 1]."""
    return to_tensor([resize_to_model(im, size, channels) for im in images])


def to_uint8(batch: Tensor) -> np.ndarray:
    """(B, C, H, W) tensor in [-1, 1] → uint8 (B, H, W) for gray or (B, H, W, 3) for RGB."""
    return array_to_uint8(batch.detach().float().cpu().numpy())


def array_to_uint8(batch: np.ndarray) -> np.ndarray:
    """(B, C, H, W) float array in [-1, 1] → uint8 (B, H, W) for gray or (B, H, W, 3) for RGB."""
    array = np.round((np.clip(batch.astype(np.float32, copy=False), -1, 1) + _ONE) * np.float32(127.5)).astype(np.uint8)
    return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)
