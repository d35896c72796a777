"""Performance work must not change a single byte of classify's output.

``perf_identity_expected.jsonl`` was written by ``classify -j 1`` before the performance changes
(commit ef50652) from ``perf_identity_notes.jsonl`` (notes from every corpus file: sample notes,
long prose, forms, terse lines, and a few odd shapes). It is only valid for the model it was made
with, so the test is skipped if the shipped model is retrained.
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
