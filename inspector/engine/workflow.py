"""The multi-step job the CLI and the GUI share: train a dataset into the registry as a new version."""

from __future__ import annotations

from collections.abc import Callable

from inspector.data.datasets import Dataset
from inspector.engine import paths
from inspector.engine.bundle import ModelBundle
from inspector.engine.events import CancelToken
from inspector.engine.registry import Entry, ModelRegistry
from inspector.engine.trainer import Event, TrainConfig, Trainer


def default_model_name(method: str, dataset: Dataset) -> str:
    return f"{dataset.name}-{method}".replace(" ", "_")[:64]


def train_dataset(
    dataset: Dataset,
    config: TrainConfig,
    registry: ModelRegistry,
    name: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    cancel: CancelToken | None = None,
    init_from: ModelBundle | None = None,
    resume: bool = True,
) -> Entry:
    """Train on the dataset's good training images and store the result as the next version of ``name``.

    A checkpoint is written each epoch; an interrupted run with the same settings resumes from it.
    """
    name = name or default_model_name(config.method, dataset)
    checkpoint = paths.cache_dir() / "checkpoints" / f"{name}.ckpt"
    if not resume:
        checkpoint.unlink(missing_ok=True)
    trainer = Trainer(config, on_event=on_event, cancel=cancel, checkpoint_path=checkpoint)
    data_info = {
        "dataset": dataset.name,
        "dataset_root": str(dataset.root),
        "layout": dataset.layout,
        "fingerprint": dataset.fingerprint(),
        "counts": dataset.counts(),
    }
    bundle = trainer.fit([s.path for s in dataset.train], data_info=data_info, init_from=init_from)
    return registry.add(bundle, name, parent=init_from.info.ref if init_from else None)
