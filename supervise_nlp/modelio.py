"""Saving and loading models safely.

A model directory holds ``model.skops`` (the fitted pipeline in skops' format, which rebuilds
objects from a description instead of unpickling them), ``card.json`` / ``card.md`` (what it was
trained on and how well it does) and ``manifest.json`` (package and format versions and a SHA-256
of every file). Loading checks the checksums, the format version and that every type in the file
is on an explicit allow-list, so a tampered or foreign file is refused before anything is built.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from collections.abc import Callable
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
# nothing is read past these sizes: a model file is a few MB, a card a few KB
MAX_BYTES = {MODEL_FILE: 512 << 20, "card.json": 8 << 20, "card.md": 8 << 20, MANIFEST: 1 << 20}
MAX_EXPANDED = 2 << 30  # what the model's zip may expand to


def read_model_file(path: Path, cap: int | None = None) -> bytes:
    """A model directory's file, read safely: never through a symlink (a link to /dev/zero would
    never end), only a regular file, and never past its size cap."""
    cap = cap if cap is not None else MAX_BYTES.get(path.name, 8 << 20)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: model file is missing") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot be read ({e.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise ModelError(f"{path}: is a symbolic link; a model's files must be regular files in its directory")
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{path}: not a regular file")
    if st.st_size > cap:
        raise ModelError(f"{path}: {st.st_size:,} bytes, over the {cap:,} a model file may have")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise ModelError(f"{path}: cannot be read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # swapped since the check
            raise ModelError(f"{path}: not a regular file")
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise ModelError(f"{path}: over the {cap:,} bytes a model file may have")
    return data


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
    if not os.path.lexists(path):
        raise ModelError(f"{directory}: not a supervise-nlp model directory (no {MANIFEST})")
    try:
        manifest = json.loads(read_model_file(path).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ModelError(f"{path}: unreadable manifest ({type(e).__name__})") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{path}: unreadable manifest (not an object)")
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
    blobs = {}
    for name, digest in listed.items():
        f = path / name
        blobs[name] = read_model_file(f)
        if hashlib.sha256(blobs[name]).hexdigest() != digest:
            raise ModelError(f"{f}: checksum does not match the manifest; the model was changed after it was saved")
    model_file = path / MODEL_FILE
    data = blobs[MODEL_FILE]  # checked bytes are the bytes loaded: nothing can be swapped in between
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            expanded = sum(i.file_size for i in z.infolist())
    except Exception as e:  # a corrupt zip or foreign format: refuse, never guess
        raise ModelError(f"{model_file}: not a readable skops model file ({type(e).__name__})") from None
    if expanded > MAX_EXPANDED:
        raise ModelError(f"{model_file}: expands to {expanded:,} bytes; refused")
    if light:
        model = _load_light(data)
        if model is not None:
            check_model(model, model_file)  # the light model gets the same checks as skops' one
            return model
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
        named = schema_types(data)
    except ModelError:
        raise
    except Exception as e:  # a corrupt zip or foreign format: refuse, never guess
        raise ModelError(f"{model_file}: not a readable skops model file ({type(e).__name__})") from None
    # skops trusts ~200 scikit-learn types by default; this package trusts only what its own
    # pipeline is made of, so every type the file names is checked against TRUSTED_TYPES
    unknown = sorted((named | set(untrusted)) - set(TRUSTED_TYPES))
    if unknown:
        raise ModelError(
            f"{model_file}: refused, it contains types this package does not trust: {', '.join(unknown[:5])}"
        )
    try:
        model = sio.load(io.BytesIO(data), trusted=[t for t in untrusted])
    except Exception as e:
        raise ModelError(f"{model_file}: could not be loaded ({type(e).__name__})") from None
    check_model(model, model_file)
    return model


def check_model(model: Any, where: Path | str = "model") -> None:
    """Refuse a model of trusted types whose values would fail (or mislead) while labelling.

    Every scikit-learn step's parameters are checked against its own constraints, the featurizer's
    against theirs; the fitted arrays must agree in shape and be finite; and a probe note must
    come back as one probability per label, each row summing to one.
    """
    import numpy as np

    def bad(why: str) -> ModelError:
        return ModelError(f"{where}: refused, {why}")

    steps = getattr(model, "steps", None)
    if not isinstance(steps, list) or not steps:
        raise bad("not a pipeline of steps")
    for name, step in steps:
        validate = getattr(step, "_validate_params", None)
        if validate is not None and hasattr(step, "_parameter_constraints"):
            try:
                validate()
            except Exception as e:
                raise bad(f"step {name!r} has invalid parameters ({str(e).splitlines()[0][:200]})") from None
    first = steps[0][1]
    from .features import SegmentFeatures  # the light featurizer, and the base of the sklearn one

    if isinstance(first, SegmentFeatures):
        p = {k: getattr(first, k, None) for k in ("n_features", "char_ngrams", "word_bigrams", "concepts",
                                                  "negation", "shape", "context")}
        n = p.get("n_features")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 1 << 24:
            raise bad("the featurizer's n_features is not a whole number from 1 to 2^24")
        cg = p.get("char_ngrams")
        if cg is not None and not (isinstance(cg, (tuple, list)) and len(cg) == 2
                                   and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in cg)
                                   and 1 <= cg[0] <= cg[1] <= 10):
            raise bad("the featurizer's char_ngrams is not a range of 1 to 10 characters")
        for flag in ("word_bigrams", "concepts", "negation", "shape", "context"):
            if not isinstance(p.get(flag), (bool, np.bool_)):
                raise bad(f"the featurizer's {flag} is not true or false")
        _check_light_shapes(steps, int(n), bad)
    classes = getattr(model, "classes_", None)
    if classes is None or sorted(map(str, classes)) != sorted(["procedural", "change_focused", "neutral"]):
        raise bad("its labels are not procedural, change_focused and neutral")
    for _, step in steps:
        for attr in ("coef_", "intercept_", "idf_"):
            arr = getattr(step, attr, None)
            if arr is not None and not np.all(np.isfinite(np.asarray(arr, dtype=float))):
                raise bad(f"{attr} holds values that are not finite numbers")
    try:
        proba = np.asarray(model.predict_proba(_probe(first)), dtype=float)
    except Exception as e:
        raise bad(f"it fails on a probe note ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})"
                  ) from None
    if proba.shape != (2, 3) or not np.all(np.isfinite(proba)) or not np.allclose(proba.sum(axis=1), 1, atol=1e-3):
        raise bad("it does not give one probability per label for a probe note")


def _check_light_shapes(steps: list, n_features: int, bad: Callable[[str], ModelError]) -> None:
    """The light pipeline's settings and arrays (scikit-learn's own checks do not run on it)."""
    from .classify import LightLogistic, LightTfidf

    for _, step in steps[1:]:
        if isinstance(step, LightTfidf):
            if step.norm not in ("l2", None) or not isinstance(step.sublinear_tf, bool):
                raise bad("the tf-idf step's settings are not valid")
            if step.idf_ is not None and step.idf_.shape != (n_features,):
                raise bad("the tf-idf step's idf_ does not match the featurizer's n_features")
        elif isinstance(step, LightLogistic):
            k = len(step.classes_)
            if step.coef_.ndim != 2 or step.coef_.shape != (k, n_features) or step.intercept_.shape != (k,):
                raise bad("the classifier's coef_ or intercept_ does not match its labels and features")


def _probe(first_step: Any) -> list[Any]:
    texts = ["SW to send the CIN plan by Friday.", "Mum said she is proud of how the boys are doing."]
    from .features import SegmentFeatures

    if not isinstance(first_step, SegmentFeatures):
        return texts
    from .segment import get_nlp, segments_of

    return [segments_of(doc)[0] for doc in get_nlp().pipe(texts)]


class _NotLight(Exception):
    """The file holds something the light reader does not build; skops loads it instead."""


_LIGHT_DESIGN = ("supervise_nlp.features.SegmentFeaturizer", "sklearn.feature_extraction.text.TfidfTransformer",
                 "sklearn.linear_model._logistic.LogisticRegression")


def _load_light(data: bytes) -> Any:
    """The default design as plain arrays and our featurizer, or None to use skops.

    Every type the file names must be on TRUSTED_TYPES (as for skops); only plain JSON values,
    lists, tuples, dicts and NumPy arrays (``allow_pickle=False``) are decoded, and the only
    object built is a ``SegmentFeatures`` given its saved state.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            schema = _read_schema(z)
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


def _read_schema(z: zipfile.ZipFile) -> Any:
    info = z.getinfo("schema.json")
    if info.file_size > 64 << 20:
        raise ModelError("schema.json is too large")
    return json.loads(z.read(info))


def schema_types(model_file: Path | bytes) -> set[str]:
    """Every type a skops file names, read from its schema without building anything."""
    src = io.BytesIO(model_file) if isinstance(model_file, bytes) else model_file
    with zipfile.ZipFile(src) as z:
        schema = _read_schema(z)
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
    """The model card, read as safely as the model: checked against the manifest's checksum.

    No card (or no directory) gives ``{}``; a card that is there but does not match its manifest,
    or is a link or a device, is refused: a report must not quote figures nobody vouched for.
    """
    path = Path(directory) if directory else default_model_dir()
    if path.is_file():
        path = path.parent
    card = path / "card.json"
    if not os.path.lexists(card):
        return {}
    data = read_model_file(card)
    if os.path.lexists(path / MANIFEST):
        digest = (read_manifest(path).get("files") or {}).get("card.json")
        if digest != hashlib.sha256(data).hexdigest():
            raise ModelError(f"{card}: checksum does not match the manifest; the card was changed after it was saved")
    try:
        out = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return {}
    return out if isinstance(out, dict) else {}
