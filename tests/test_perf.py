"""Performance work must not change a single byte of classify's output.

``perf_identity_expected.jsonl`` is ``classify -j 1``'s output on ``perf_identity_notes.jsonl``
(notes from every corpus file: sample notes, long prose, forms, terse lines, and a few odd shapes).
It was first written before the performance changes (commit ef50652) and checked identical after
them; it was rewritten when the default model was retrained on the register corpus (the sha256 of
that model is beside it). It is only valid for that model, so the test is skipped if the shipped
model is retrained again: rewrite the file then, from the code as it was before any speed change.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _same_model(data: Path) -> bool:
    manifest = json.loads((ROOT / "models" / "default" / "manifest.json").read_text())
    return manifest["files"]["model.skops"] == (data / "perf_identity_model.sha256").read_text().strip()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_classify_output_is_byte_identical_to_before(data, tmp_path, jobs):
    if not _same_model(data):
        pytest.skip("the shipped model was retrained after the expected output was written")
    out = tmp_path / "out.jsonl"
    p = subprocess.run([sys.executable, "-m", "supervise_nlp", "classify", "-q", "-j", jobs,
                        str(data / "perf_identity_notes.jsonl"), "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == (data / "perf_identity_expected.jsonl").read_bytes()


def test_light_model_gives_bit_identical_probabilities():
    """The scikit-learn-free stand-ins repeat scikit-learn's arithmetic exactly."""
    import glob

    import numpy as np

    from supervise_nlp.classify import LightPipeline
    from supervise_nlp.modelio import load_model
    from supervise_nlp.read import corpus_text
    from supervise_nlp.segment import get_nlp, segments_of

    full, light = load_model(), load_model(light=True)
    assert isinstance(light, LightPipeline) and not isinstance(full, LightPipeline)
    texts = [corpus_text(json.loads(line)) for f in sorted(glob.glob(str(ROOT / "corpora" / "*" / "*.jsonl")))
             for line in open(f, encoding="utf-8") if line.strip()]
    segs = [s for doc in get_nlp().pipe(texts) for s in segments_of(doc)]
    assert len(segs) > 5000
    for lo in range(0, len(segs), 3000):
        batch = segs[lo:lo + 3000]
        assert np.array_equal(full.predict_proba(batch), light.predict_proba(batch))
    assert np.array_equal(full.steps[-1][1].coef_, light.steps[-1][1].coef_)
    assert list(full.classes_) == list(light.classes_)


def test_labelling_imports_neither_sklearn_nor_skops():
    code = ("import sys\nfrom supervise_nlp.parallel import labeller_for\n"
            "lab = labeller_for(None)\nlist(lab.label_texts(['Visit completed. Mum said she wants to change.']))\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'skops'}))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_written_labels_are_what_json_dumps_writes(labeller, tmp_path):
    """classify writes the labels as text (label_texts_json): each line must be exactly the
    safe encoder's line for the same record, whatever the note's own fields are."""
    from supervise_nlp.classify import output_record
    from supervise_nlp.parallel import label_notes
    from supervise_nlp.read import Note, read_records
    from supervise_nlp.textsafe import dumps

    rows = [
        {"id": 1, "text": "Core group invites sent. Mum said she wants to be the parent she never had."},
        {"id": "x", "label": "theirs", "change_share": 2, "team": "Ünïcode \u2028 team", "n": 1.5,
         "text": "Visit.\n\n- bedroom seen\n- fridge: milk out of date"},
        {"text": "Seen."},
        {"text": "No segment reads as either: hello."},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    notes = [x for x in read_records([str(path)]) if isinstance(x, Note)]
    assert len(notes) == len(rows)
    for keep_text in (False, True):
        fast = label_notes(labeller, notes, keep_text, serialize=True)
        labelled = labeller.label_texts([n.text for n in notes])
        slow = [dumps(output_record(n, r, keep_text)) for n, r in zip(notes, labelled)]
        assert fast == slow
        assert [json.loads(x)["counts"] for x in fast] == [json.loads(x)["counts"] for x in slow]
