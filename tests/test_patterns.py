"""Domain patterns are data the codebook can be checked against."""

import json
import re
from importlib import resources
from pathlib import Path

import pytest

CODEBOOK = Path(__file__).resolve().parents[2] / "shared" / "CODEBOOK.md"


def load(name):
    return json.loads(resources.files("supervise_nlp.patterns").joinpath(name).read_text("utf-8"))


def squash(s):
    return re.sub(r"\s+", " ", s.replace("*", "")).strip().lower()


def test_every_concept_quotes_the_codebook_and_leans_to_a_codebook_label():
    if not CODEBOOK.exists():
        pytest.skip("shared/CODEBOOK.md is not beside this checkout")
    book = squash(CODEBOOK.read_text("utf-8"))
    concepts = load("concepts.json")["concepts"]
    assert len(concepts) >= 10
    for c in concepts:
        quotes = c["codebook"] if isinstance(c["codebook"], list) else [c["codebook"]]
        for q in quotes:
            assert squash(q) in book, f"{c['name']}: quote {q!r} not found in the codebook"
        assert c["leans"] in ("procedural", "change_focused", "neutral")
        assert c["terms"] and all(t == t.lower() and t.strip() == t for t in c["terms"])
        assert len(set(c["terms"])) == len(c["terms"]), f"{c['name']}: repeated term"


def test_negation_termsets_have_the_negex_shape():
    neg = load("negation.json")
    for k in ("pseudo_negations", "preceding_negations", "following_negations", "termination"):
        assert neg[k] and all(isinstance(t, str) and t for t in neg[k])
    assert 1 <= neg["window"] <= 12
