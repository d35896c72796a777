"""Saving and loading models safely.

A model directory holds ``model.skops`` (the fitted pipeline in skops' format, which rebuilds
objects from a description instead of unpickling them), ``card.json`` / ``card.md`` (what it was
trained on and how well it does) and ``manifest.json`` (package and format versions and a SHA-256
of every file). Loading checks the checksums, the format version and that every type in the file
is on an explicit allow-list, so a tampered or foreign file is refused before anything is built.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MODEL_FILE = "model.skops"
MANIFEST = "manifest.json"
# Types a model may contain: this package's featurizer and the scikit-learn / NumPy / SciPy
# pieces of the default pipeline. Anything else in a file is refused.
TRUSTED_TYPES = [
    "supervise_nlp.features.SegmentFeaturizer",
    "sklearn.pipeline.Pipeline",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.preprocessing._label.LabelEncoder",
    "builtins.tuple",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.int64",
    "numpy.str_",
    "scipy.sparse._csr.csr_matrix",
    "builtins.dict",
    "builtins.list",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
]
EXPECTED_FILES = {MODEL_FILE, "card.json", "card.md"}


class ModelError(Exception):
    """A model that cannot or must not be loaded; the message says why and what to do."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_version() -> str:
    from . import __version__

    return __version__


def default_model_dir() -> Path:
    """The shipped model: inside the installed package, or ``models/default`` in a source checkout."""
    installed = Path(str(resources.files("supervise_nlp"))) / "default_model"
    if (installed / MANIFEST).exists():
        return installed
    checkout = Path(__file__).resolve().parent.parent / "models" / "default"
    return checkout


def save_model(model: Any, directory: str | Path, card: dict[str, Any], card_md: str) -> Path:
    import skops.io as sio

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    sio.dump(model, out / MODEL_FILE, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    (out / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (out / "card.md").write_text(card_md, "utf-8")
    files = {name: _sha256(out / name) for name in (MODEL_FILE, "card.json", "card.md")}
    manifest = {
        "format_version": FORMAT_VERSION,
        "package": "supervise-nlp",
        "package_version": package_version(),
        "labels": card.get("labels"),
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return out


def _compatible(version: str) -> tuple[str, ...]:
    """The part of a version that must match: major.minor while 0.x (semver), major after."""
    parts = (version.split(".") + ["0", "0"])[:2]
    return tuple(parts) if parts[0] == "0" else (parts[0],)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.exists():
        raise ModelError(f"{directory}: not a supervise-nlp model directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: unreadable manifest ({e})") from None
    if manifest.get("package") != "supervise-nlp":
        raise ModelError(f"{directory}: not a supervise-nlp model (manifest names {manifest.get('package')!r})")
    made_by = str(manifest.get("package_version", "?"))
    if _compatible(made_by) != _compatible(package_version()):
        raise ModelError(
            f"{directory}: model was built by supervise-nlp {made_by}; this is {package_version()}, "
            "whose models are not interchangeable with it. Retrain it with `supervise-nlp train`, "
            "or use the matching package version."
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{directory}: model format {manifest.get('format_version')} was written by supervise-nlp "
            f"{manifest.get('package_version')}; this version ({package_version()}) reads format "
            f"{FORMAT_VERSION}. Retrain it with `supervise-nlp train`."
        )
    return manifest


def load_model(directory: str | Path | None = None, light: bool = False) -> Any:
    """Load a fitted pipeline, refusing anything tampered with, foreign or unsafe.

    With ``light``, a model of the default design (featurizer, tf-idf, logistic regression) comes
    back as ``classify.LightPipeline``: the same arithmetic, built from the same checked file
    without importing skops or scikit-learn (a second or more of start-up). Any other design, or
    a file this reader does not know, is loaded by skops as usual.
    """
    path = Path(directory) if directory else default_model_dir()
    if path.is_file():
        path = path.parent
    if not path.exists():
        raise ModelError(f"{path}: no such model directory")
    manifest = read_manifest(path)
    listed = manifest.get("files", {})
    if not isinstance(listed, dict) or set(listed) != EXPECTED_FILES:
        raise ModelError(f"{path}: the manifest must list exactly {', '.join(sorted(EXPECTED_FILES))}")
    for name, digest in listed.items():
        f = path / name
        if not f.exists():
            raise ModelError(f"{path}: model file {name} is missing")
        if _sha256(f) != digest:
            raise ModelError(f"{f}: checksum does not match the manifest; the model was changed after it was saved")
    model_file = path / MODEL_FILE
    if light:
        model = _load_light(model_file)
        if model is not None:
            return model
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=model_file)
        named = schema_types(model_file)
    except Exception as e:  # a corrupt zip or foreign format: refuse, never guess
        raise ModelError(f"{model_file}: not a readable skops model file ({e})") from None
    # skops trusts ~200 scikit-learn types by default; this package trusts only what its own
    # pipeline is made of, so every type the file names is checked against TRUSTED_TYPES
    unknown = sorted((named | set(untrusted)) - set(TRUSTED_TYPES))
    if unknown:
        raise ModelError(
            f"{model_file}: refused, it contains types this package does not trust: {', '.join(unknown[:5])}"
        )
    try:
        return sio.load(model_file, trusted=[t for t in untrusted])
    except Exception as e:
        raise ModelError(f"{model_file}: could not be loaded ({e})") from None


class _NotLight(Exception):
    """The file holds something the light reader does not build; skops loads it instead."""


_LIGHT_DESIGN = ("supervise_nlp.features.SegmentFeaturizer", "sklearn.feature_extraction.text.TfidfTransformer",
                 "sklearn.linear_model._logistic.LogisticRegression")


def _load_light(model_file: Path) -> Any:
    """The default design as plain arrays and our featurizer, or None to use skops.

    Every type the file names must be on TRUSTED_TYPES (as for skops); only plain JSON values,
    lists, tuples, dicts and NumPy arrays (``allow_pickle=False``) are decoded, and the only
    object built is a ``SegmentFeatures`` given its saved state.
    """
    try:
        with zipfile.ZipFile(model_file) as z:
            schema = json.loads(z.read("schema.json"))
            unknown = schema_types_of(schema) - set(TRUSTED_TYPES)
            if unknown:
                return None  # the skops path refuses it with its usual message
            if f"{schema.get('__module__')}.{schema.get('__class__')}" != "sklearn.pipeline.Pipeline":
                return None
            state = _light_state(schema, z)
            steps = state["steps"]
            if [f"{m}.{c}" for _, (m, c, _s) in steps] != list(_LIGHT_DESIGN):
                return None
            return _light_pipeline(steps)
    except (_NotLight, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None


def _light_value(node: Any, z: zipfile.ZipFile) -> Any:
    if not isinstance(node, dict):
        raise _NotLight(node)
    kind = node.get("__loader__")
    if kind == "JsonNode":
        return json.loads(node["content"])
    if kind == "ListNode":
        return [_light_value(x, z) for x in node["content"]]
    if kind == "TupleNode":
        return tuple(_light_value(x, z) for x in node["content"])
    if kind == "DictNode":
        if any(t.get("__class__") != "str" or t.get("__module__") != "builtins"
               for t in node["key_types"]["content"]):
            raise _NotLight("non-string keys")
        return {k: _light_value(v, z) for k, v in node["content"].items()}
    if kind == "NdArrayNode" and node.get("type") == "numpy":
        import io

        import numpy as np

        return np.load(io.BytesIO(z.read(node["file"])), allow_pickle=False)
    if kind == "ObjectNode":
        return node["__module__"], node["__class__"], _light_state(node, z)
    raise _NotLight(kind)


def _light_state(node: dict[str, Any], z: zipfile.ZipFile) -> dict[str, Any]:
    state = node["content"]
    if state.get("__loader__") != "DictNode":
        raise _NotLight("object state is not a dict")
    return _light_value(state, z)


def _light_pipeline(steps: list) -> Any:
    import numpy as np

    from .classify import LightLogistic, LightPipeline, LightTfidf
    from .features import SegmentFeatures

    (n_feat, (_, _, feat)), (n_tfidf, (_, _, tfidf)), (n_clf, (_, _, clf)) = steps
    if tfidf.get("norm") not in ("l2", None) or (tfidf.get("use_idf") and "idf_" not in tfidf):
        raise _NotLight("tf-idf settings")
    classes = clf["classes_"]
    if len(classes) < 3 or clf.get("multi_class", "auto") not in ("auto", "multinomial", "deprecated"):
        raise _NotLight("binary or one-vs-rest classifier")
    featurizer = SegmentFeatures.__new__(SegmentFeatures)
    featurizer.__setstate__({k: v for k, v in feat.items() if k != "_sklearn_version"})
    idf = np.asarray(tfidf["idf_"], dtype=np.float64) if tfidf.get("use_idf") else None
    return LightPipeline([
        (n_feat, featurizer),
        (n_tfidf, LightTfidf(idf, bool(tfidf.get("sublinear_tf")), tfidf.get("norm"))),
        (n_clf, LightLogistic(np.asarray(clf["coef_"]), np.asarray(clf["intercept_"]), np.asarray(classes))),
    ])


def schema_types(model_file: Path) -> set[str]:
    """Every type a skops file names, read from its schema without building anything."""
    with zipfile.ZipFile(model_file) as z:
        schema = json.loads(z.read("schema.json"))
    return schema_types_of(schema)


def schema_types_of(schema: Any) -> set[str]:
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_card(directory: str | Path | None = None) -> dict[str, Any]:
    path = Path(directory) if directory else default_model_dir()
    try:
        return json.loads((path / "card.json").read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
