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


def load_model(directory: str | Path | None = None) -> Any:
    """Load a fitted pipeline, refusing anything tampered with, foreign or unsafe."""
    import skops.io as sio

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


def schema_types(model_file: Path) -> set[str]:
    """Every type a skops file names, read from its schema without building anything."""
    with zipfile.ZipFile(model_file) as z:
        schema = json.loads(z.read("schema.json"))
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
