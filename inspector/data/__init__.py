"""Image I/O, dataset discovery, the ELPV demo data and synthetic defects.

Only numpy and OpenCV here: no torch and no Qt, so the GUI and CLI can use
this package cheaply.
"""

from .datasets import (
    DEFECT,
    GOOD,
    UNKNOWN,
    Dataset,
    DatasetError,
    Sample,
    open_dataset,
    split_samples,
)
from .elpv import elpv_available, materialise_elpv
from .images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    ReadReport,
    list_images,
    load_images,
    read_image,
    write_image,
)
from .synthetic import DEFECT_KINDS, make_defect_set, paint_defect

__all__ = [
    "DEFECT",
    "DEFECT_KINDS",
    "GOOD",
    "IMAGE_EXTENSIONS",
    "UNKNOWN",
    "Dataset",
    "DatasetError",
    "ImageReadError",
    "ReadReport",
    "Sample",
    "elpv_available",
    "list_images",
    "load_images",
    "make_defect_set",
    "materialise_elpv",
    "open_dataset",
    "paint_defect",
    "read_image",
    "split_samples",
    "write_image",
]
