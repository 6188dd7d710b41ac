"""Hostile names and numbers: no model name or reference reaches outside the app's folders, an
import never changes what a model uses, and bad numbers are refused before any work."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from inspector.cli import EXIT_ERROR, main
from inspector.engine.bundle import ModelBundle, ModelInfo
from inspector.engine.modelref import ModelRef, ModelRefError, check_name, inside
from inspector.engine.registry import ModelRegistry, RegistryError
from inspector.engine.retrain import FeedbackPool
from inspector.engine.threshold import Threshold

QUICK = ["--method", "ganomaly", "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--param", "width=8", "--param", "nz=16"]


def _victim(tmp_path: Path) -> Path:
    """A folder outside the app's folders that nothing may touch."""
    victim = tmp_path / "victim"
    (victim / "v1.inspector").parent.mkdir(parents=True)
    (victim / "v1.inspector").write_bytes(b"precious")
    (victim / "notes.txt").write_text("precious")
    return victim


def _registered(tmp_home, bundle, name="parts") -> ModelRegistry:
    registry = ModelRegistry()
    registry.add(bundle, name)
    return registry


@pytest.mark.parametrize("text", ["", "..", ".", "../x", "a/b", "/abs/path", "a\\b", "-x", "x" * 65, "a b", "é", "a\x00b"])
def test_invalid_names_are_refused(text):
    with pytest.raises(ModelRefError, match="invalid model name"):
        check_name(text)


@pytest.mark.parametrize("text,expected", [("solar", ModelRef("solar")), ("solar@v2", ModelRef("solar", 2)),
                                           ("solar@V3", ModelRef("solar", 3)), ("solar@4", ModelRef("solar", 4))])
def test_references_parse_in_one_place(text, expected):
    assert ModelRef.parse(text) == expected and ModelRef.parse(str(expected)) == expected


def test_references_are_written_in_one_spelling_that_reads_back(tmp_path):
    from inspector.engine.modelref import ref_text
    from inspector.engine.results_store import ResultsStore

    assert ref_text("solar", 3) == str(ModelRef("solar", 3)) == "solar@v3" and ref_text("solar", None) == "solar"
    info = ModelInfo("autoencoder", {}, Threshold(0.5, "manual"), name="solar", version=3)
    assert info.ref == "solar@v3" and ModelRef.parse(info.ref) == ModelRef("solar", 3)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.record(source="camera 0", frame_id=1, frame_name="", model="solar", model_version=3, score=0.1,
                     threshold=0.5, decision="OK")
        store.record(source="camera 0", frame_id=2, frame_name="", model="loose", model_version=0, score=0.9,
                     threshold=0.5, decision="NG")
        assert store.models() == ["loose", "solar@v3"]
        assert {r.model_ref for r in store.query()} == {"loose", "solar@v3"}
        assert [r.frame_id for r in store.query(model=store.models()[1])] == [1]  # what it lists, it filters by


@pytest.mark.parametrize("text", ["solar@", "solar@vx", "solar@v-1", "solar@v0", "solar@v1@v2", "../solar@v1", "solar@v١"])
def test_bad_references_are_refused(text):
    with pytest.raises(ModelRefError):
        ModelRef.parse(text)


def test_inside_refuses_paths_that_leave_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert inside(root, "a", "b") == root / "a" / "b"
    (root / "link").symlink_to(tmp_path)
    for parts in (("..", "x"), ("/etc",), ("link", "x")):
        with pytest.raises(ModelRefError, match="outside"):
            inside(root, *parts)


@pytest.mark.parametrize("argv", [
    ["models", "delete", "../../victim"],
    ["models", "delete", "{victim}"],
    ["models", "delete", "../../victim@v1"],
    ["models", "rename", "../../victim", "stolen"],
    ["models", "rename", "parts", "../../victim2"],
    ["models", "activate", "../x@v1"],
    ["models", "show", "../../victim"],
])
def test_models_commands_never_reach_outside_the_registry(tmp_home, tiny_bundle, tmp_path, capsys, argv):
    victim = _victim(tmp_path)
    registry = _registered(tmp_home, tiny_bundle)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "inspector-home" not in p.parts)
    argv = [a.format(victim=victim) for a in argv]
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "inspector-home" not in p.parts)
    assert after == before and (victim / "v1.inspector").read_bytes() == b"precious"
    assert [e.version for e in registry.versions("parts")] == [1]


def test_registry_calls_refuse_names_that_are_paths(tmp_home, tiny_bundle, tmp_path):
    victim = _victim(tmp_path)
    registry = _registered(tmp_home, tiny_bundle)
    for call in (lambda: registry.delete(str(victim)), lambda: registry.delete("../../victim", 1),
                 lambda: registry.rename("../../victim", "x"), lambda: registry.set_active("../victim", 1),
                 lambda: registry.resolve("../../victim"), lambda: registry.add(tiny_bundle, "../escaped"),
                 lambda: registry.versions("../../victim"), lambda: registry.pinned_version("..")):
        with pytest.raises(ModelRefError):
            call()
    assert (victim / "notes.txt").exists() and not (tmp_path / "escaped").exists()


def test_delete_leaves_what_the_registry_did_not_write(tmp_home, tiny_bundle):
    registry = _registered(tmp_home, tiny_bundle)
    keep = registry.folder("parts") / "README.txt"
    keep.write_text("someone's notes")
    assert registry.delete("parts") == 1
    assert keep.read_text() == "someone's notes" and registry.names() == []


def test_train_refuses_a_bad_name_before_any_work(tmp_home, parts_dir, capsys):
    for name in ("/some/abs/path", "x" * 300, "../up"):
        assert main(["train", str(parts_dir), "--name", name, *QUICK]) == EXIT_ERROR
        assert "invalid model name" in capsys.readouterr().err
    assert not list(tmp_home.rglob("*.ckpt")) and not list(tmp_home.rglob("*.inspector"))
    assert not Path("/some/abs/path").exists()


@pytest.mark.parametrize("option,message", [
    (["--epochs", "0"], "--epochs: must be a whole number 1..10000, got 0"),
    (["--epochs", "-3"], "--epochs: must be a whole number 1..10000"),
    (["--batch-size", "0"], "--batch-size: must be a whole number 1..4096"),
    (["--batch-size", "many"], "--batch-size: expected a whole number 1..4096, got 'many'"),
    (["--false-alarm-rate", "5"], "--false-alarm-rate: must be a number more than 0 and at most 0.5"),
    (["--false-alarm-rate", "nan"], "--false-alarm-rate: expected a number"),
    (["--image-size", "100"], "--image-size: must be a power of two 32..256"),
    (["--seed", "-1"], "--seed: must be a whole number 0.."),
    (["--param", "nz=abc"], "param 'nz' must be a whole number"),
    (["--param", "nz=100000000"], "param 'nz' must be a whole number in"),
    (["--param", "w_con=NaN"], "param 'w_con' must be a finite number"),
    (["--param", "no_such=1"], "no_such"),
    (["--param", "nz"], "--param expects key=value"),
])
def test_train_refuses_bad_numbers_at_parse_time(tmp_home, parts_dir, capsys, option, message):
    assert main(["train", str(parts_dir), "--name", "n", *QUICK, *option]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_home.rglob("*.inspector")) and not list(tmp_home.rglob("*.ckpt"))


def test_a_crafted_name_in_a_model_file_cannot_place_the_feedback_pool(tmp_home):
    for name in ("../../outside", "/tmp/x", "a/b"):
        with pytest.raises(ModelRefError):
            FeedbackPool(name)
    assert FeedbackPool("parts").folder == tmp_home / "data" / "pools" / "parts"


def _file_with(bundle: ModelBundle, path: Path, name: str, threshold: float) -> Path:
    info = ModelInfo.from_dict(bundle.info.to_dict())
    info.name, info.version, info.threshold = name, 7, Threshold(threshold, "manual")
    return ModelBundle(bundle.model, info).save(path)


def test_import_never_changes_the_version_in_use(tmp_home, tiny_bundle, tmp_path, capsys):
    registry = _registered(tmp_home, tiny_bundle)
    in_use = registry.active("parts")
    lenient = _file_with(tiny_bundle, tmp_path / "lenient.inspector", "parts", 1e9)
    assert main(["models", "import", str(lenient)]) == EXIT_ERROR
    assert "a model named 'parts' exists already" in capsys.readouterr().err
    assert [e.version for e in registry.versions("parts")] == [1] and registry.active("parts").path == in_use.path

    assert main(["models", "import", str(lenient), "--name", "parts"]) == EXIT_ERROR
    assert main(["models", "import", str(lenient), "--name", "lenient-copy", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["name"], shown["version"]) == ("lenient-copy", 1)
    assert registry.active("parts").info.threshold.value == in_use.info.threshold.value
    assert main(["models", "import", str(tmp_path / "missing.inspector")]) == EXIT_ERROR


def test_gui_import_asks_for_a_new_name_on_a_clash(qtbot, tmp_home, tiny_bundle, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    from inspector.gui.pages.models_page import ModelsPage
    from inspector.gui.session import Session
    from inspector.gui.settings import Settings

    registry = _registered(tmp_home, tiny_bundle)
    lenient = _file_with(tiny_bundle, tmp_path / "lenient.inspector", "parts", 1e9)
    page = ModelsPage(Session(), Settings(str(tmp_path / "gui.ini")))
    qtbot.addWidget(page)
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (asked.append(k.get("text")), ("", False))[1])
    assert page.import_file(str(lenient)) is None  # cancelled: nothing imported
    assert asked == ["parts-import"] and [e.version for e in registry.versions("parts")] == [1]

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("parts-b", True))
    job = page.import_file(str(lenient))
    with qtbot.waitSignal(job.finished, timeout=20000):
        pass
    assert registry.names() == ["parts", "parts-b"] and registry.active("parts").info.threshold.value < 1e9


def test_models_list_shows_broken_files_and_carries_on(tmp_home, tiny_bundle, capsys):
    registry = _registered(tmp_home, tiny_bundle)
    (registry.root / "junk").mkdir()
    (registry.root / "junk" / "v1.inspector").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    (registry.root / "bad name").mkdir()  # a folder the app did not make: ignored
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "parts" in out and "junk@v1" in out and "BROKEN" in out and "v1.inspector" in out
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed["models"]] == ["parts"] and [b["name"] for b in listed["broken"]] == ["junk"]


def test_concurrent_saves_of_one_name_never_share_a_version(tmp_home, tiny_bundle):
    registry = ModelRegistry()
    entries, errors = [], []

    def save() -> None:
        try:
            for _ in range(3):
                entries.append(ModelRegistry().add(tiny_bundle, "race"))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=save) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    versions = sorted(e.version for e in entries)
    assert versions == list(range(1, 19))
    assert [e.info.version for e in registry.versions("race")] == versions  # each file says its own number
    assert not list(registry.folder("race").glob("*.tmp"))


def test_export_never_overwrites_without_force(tmp_home, tiny_bundle, tmp_path, capsys):
    _registered(tmp_home, tiny_bundle)
    dest = tmp_path / "out.inspector"
    dest.write_bytes(b"someone else's file")
    assert main(["models", "export", "parts", str(dest)]) == EXIT_ERROR
    assert "--force" in capsys.readouterr().err and dest.read_bytes() == b"someone else's file"
    assert main(["models", "export", "parts", str(dest), "--force"]) == 0
    assert ModelBundle.load(dest).info.name == "parts"
    assert main(["models", "export", "parts", str(tmp_path)]) == 0
    assert (tmp_path / "parts-v1.inspector").is_file()


def test_resolve_reports_unknown_versions(tmp_home, tiny_bundle):
    registry = _registered(tmp_home, tiny_bundle)
    with pytest.raises(RegistryError, match="no version 9"):
        registry.resolve("parts@v9")
    assert registry.resolve("parts@v1") == registry.resolve(ModelRef("parts", 1))


def test_models_page_lists_good_models_and_reports_broken_files(qtbot, tmp_home, tiny_bundle, tmp_path):
    from inspector.gui.pages.models_page import ModelsPage
    from inspector.gui.session import Session
    from inspector.gui.settings import Settings

    registry = _registered(tmp_home, tiny_bundle)
    (registry.root / "junk").mkdir()
    (registry.root / "junk" / "v1.inspector").write_bytes(b"garbage")
    session = Session()
    errors = []
    session.error.connect(errors.append)
    page = ModelsPage(session, Settings(str(tmp_path / "gui.ini")))
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.refreshed, timeout=20000):
        page.refresh()
    assert page.tree.topLevelItemCount() == 1
    assert len(errors) == 1 and "1 model file(s)" in errors[0] and "junk" in errors[0]


def test_the_train_form_offers_only_the_allowed_range_of_each_parameter(qtbot):
    from inspector.gui.methods import describe_methods
    from inspector.gui.widgets.param_form import ParamForm
    from inspector.models.base import option_range
    from inspector.models import get_method

    choice = next(c for c in describe_methods() if c.name == "ganomaly")
    form = ParamForm()
    qtbot.addWidget(form)
    form.set_fields(choice.params, {"nz": 10**9}, choice.ranges)
    low, high = option_range(get_method("ganomaly").Config, "nz")
    assert (form.editors["nz"].minimum(), form.editors["nz"].maximum()) == (low, high)
    assert form.values()["nz"] == high  # a stored value out of range is brought into it
    get_method("ganomaly").Config.from_dict(form.values())  # whatever the form offers is valid


@pytest.mark.parametrize("text", ["solar cells (line 2)", "../../x", ".hidden", "é" * 80, ""])
def test_any_text_makes_a_valid_name(text):
    from inspector.engine.modelref import name_from

    assert check_name(name_from(text)) and len(name_from(text, 56)) <= 56
