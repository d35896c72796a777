"""Model files load without running code from them; tampered or foreign files are refused."""

import json
import shutil
import zipfile

import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from supervise_nlp.modelio import MANIFEST, MODEL_FILE, ModelError, _sha256, load_model


def copy(src, where):
    dst = where / "model"
    shutil.copytree(src, dst)
    return dst


def replace_model_file(m, data: bytes):
    """Swap in another model file and recompute its checksum, as an attacker could."""
    (m / MODEL_FILE).write_bytes(data)
    manifest = json.loads((m / MANIFEST).read_text())
    manifest["files"][MODEL_FILE] = _sha256(m / MODEL_FILE)
    (m / MANIFEST).write_text(json.dumps(manifest))


def dumped(obj) -> bytes:
    import io

    buf = io.BytesIO()
    sio.dump(obj, buf)
    return buf.getvalue()


def test_round_trip_predicts_the_same(mini_model_dir):
    model = load_model(mini_model_dir)
    assert list(model.classes_) == ["change_focused", "neutral", "procedural"]
    assert model.predict(["SW to update the CIN plan on the system by Friday."])[0] == "procedural"


def test_changed_file_fails_the_checksum(mini_model_dir, tmp_path):
    m = copy(mini_model_dir, tmp_path)
    with open(m / MODEL_FILE, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="checksum does not match"):
        load_model(m)


def test_crafted_file_with_code_is_refused_even_with_a_valid_checksum(mini_model_dir, tmp_path):
    """A file that would call os.system when built is refused before anything is built."""
    m = copy(mini_model_dir, tmp_path)
    import os

    replace_model_file(m, dumped(Pipeline([("x", FunctionTransformer(func=os.system))])))
    with pytest.raises(ModelError, match="does not trust"):
        load_model(m)


def test_scikit_learn_types_outside_this_package_s_list_are_refused(mini_model_dir, tmp_path):
    """skops itself trusts most of scikit-learn and numpy functions; this package does not."""
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    for model in (Pipeline([("x", FunctionTransformer(func=np.sqrt))]), KNeighborsClassifier()):
        m = copy(mini_model_dir, tmp_path / type(model).__name__)
        replace_model_file(m, dumped(model))
        with pytest.raises(ModelError, match="does not trust"):
            load_model(m)


def test_manifest_must_cover_exactly_the_model_files(mini_model_dir, tmp_path):
    m = copy(mini_model_dir, tmp_path)
    manifest = json.loads((m / MANIFEST).read_text())
    del manifest["files"][MODEL_FILE]
    (m / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="must list exactly"):
        load_model(m)


def test_pickle_disguised_as_a_model_is_refused(mini_model_dir, tmp_path):
    import pickle

    m = copy(mini_model_dir, tmp_path)
    replace_model_file(m, pickle.dumps({"a": 1}))
    with pytest.raises(ModelError, match="not a readable skops model"):
        load_model(m)


def test_model_from_another_format_version_is_refused(mini_model_dir, tmp_path):
    m = copy(mini_model_dir, tmp_path)
    manifest = json.loads((m / MANIFEST).read_text())
    manifest["format_version"] = 99
    (m / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="Retrain it"):
        load_model(m)


def test_model_built_by_another_package_version_is_refused(mini_model_dir, tmp_path):
    m = copy(mini_model_dir, tmp_path)
    manifest = json.loads((m / MANIFEST).read_text())
    manifest["package_version"] = "9.1.0"
    (m / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="built by supervise-nlp 9.1.0"):
        load_model(m)


def test_directory_without_manifest_is_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="not a supervise-nlp model directory"):
        load_model(tmp_path)


def test_shipped_model_is_a_valid_skops_zip():
    from supervise_nlp.modelio import default_model_dir

    assert zipfile.is_zipfile(default_model_dir() / MODEL_FILE)
    load_model()
