"""The demo project's names and settings, in a module light enough for the CLI's argument parser."""

from __future__ import annotations

from pathlib import Path

from inspector.engine import paths

DEMO_MODEL = "elpv-demo"
DEMO_METHOD = "patchcore"  # the registry's DEFAULT_METHOD (a test checks), written out to keep this module free of torch
#: electroluminescence images show cracks, dead regions and dark spots, so that is what the demo paints
DEMO_PARAMS: dict[str, dict] = {"seg-skip-ganomaly": {"defect_kinds": ["crack", "region", "blob"]}}


def demo_data_dir() -> Path:
    return paths.data_dir() / "datasets" / "elpv"
