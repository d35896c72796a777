"""Explaining one note: each segment's label, probability, and reasons a social worker recognises.

A segment's reasons are the codebook category it matches (the concepts in
``patterns/concepts.json``, matched on the segment's own words) and the content words that carried
the model toward its label. The model's weights decide the order: a feature's contribution to a
label is its weighted value times how much more that label's coefficient is than the average over
labels, and character n-grams are credited to the word they came from. Model internals that a
reader could not act on (punctuation, digit masks such as ``dd/dd``, function words, the
neighbouring sentences, sentence length and shape) are never shown as reasons.

Guidance comes from ``patterns/guidance.json``, which restates the codebook's categories; it
describes the recording, never the practice, and appears only where a change-focused account was
plausibly possible: a procedural sentence about the person or family, whose own category has a
suggestion, and not the worker's own administration. Each suggestion is shown once per note.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from .classify import LABELS, NoteLabeller, change_share, note_label
from .segment import get_nlp, segments_of

_WORD = re.compile(r"^[a-z][a-z'’-]*[a-z]$")
_DIGIT_MASK = re.compile(r"^d+$")


@lru_cache(maxsize=1)
def _guidance() -> dict[str, Any]:
    return json.loads(resources.files("supervise_nlp.patterns").joinpath("guidance.json").read_text("utf-8"))


@lru_cache(maxsize=1)
def _concepts() -> dict[str, dict[str, Any]]:
    data = json.loads(resources.files("supervise_nlp.patterns").joinpath("concepts.json").read_text("utf-8"))
    return {c["name"]: c for c in data["concepts"]}


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | {"said", "says", "also", "today", "yesterday", "tomorrow", "would", "could"}


@lru_cache(maxsize=1)
def _matcher():
    """One phrase matcher over the codebook concepts and the guidance term lists (lower case, whole tokens)."""
    from spacy.matcher import PhraseMatcher

    nlp = get_nlp()
    m = PhraseMatcher(nlp.vocab, attr="LOWER")
    for name, c in _concepts().items():
        m.add(f"concept:{name}", list(nlp.tokenizer.pipe(c["terms"])))
    g = _guidance()
    m.add("people", list(nlp.tokenizer.pipe(g.get("about_people", []))))
    m.add("never", list(nlp.tokenizer.pipe(g.get("never_for", []))))
    return m


def is_content_word(word: str) -> bool:
    """A word a reader recognises as carrying meaning: letters only, not a function word, not a digit mask."""
    return bool(_WORD.match(word)) and not _DIGIT_MASK.match(word) and word not in _stop_words()


def contributions(labeller: NoteLabeller, segments: list) -> list[dict[str, list[tuple[str, float]]]]:
    """For each segment, every feature pushing toward each label, largest first (model internals)."""
    model = labeller.model
    featurizer, clf = model.steps[0][1], model.steps[-1][1]
    if not hasattr(clf, "coef_") or not hasattr(featurizer, "feature_names_of"):
        return [{} for _ in segments]
    X = featurizer.transform(segments)
    for _, step in model.steps[1:-1]:
        X = step.transform(X)
    names = featurizer.feature_names_of(segments)
    classes = [str(c) for c in clf.classes_]
    coef = clf.coef_
    if coef.shape[0] == 1:  # binary: one row, for classes_[1]
        coef = np.vstack([-coef[0], coef[0]])
    relative = coef - coef.mean(axis=0, keepdims=True)
    out = []
    X = X.tocsr()
    for r in range(X.shape[0]):
        row = X.getrow(r)
        per_label: dict[str, list[tuple[str, float]]] = {}
        for k, lab in enumerate(classes):
            totals: dict[str, float] = defaultdict(float)
            for col, val in zip(row.indices, row.data):
                labels_here = names[r].get(int(col), {"(hashed feature)"})
                share = val * relative[k, col] / len(labels_here)
                for label in labels_here:
                    totals[label] += share
            ranked = sorted(totals.items(), key=lambda kv: -kv[1])
            per_label[lab] = [(n, round(float(v), 3)) for n, v in ranked if v > 0]
        out.append(per_label)
    return out


_CONCEPT_PREFIXES = ("concept: ", "concept in the main clause: ", "concept in a subordinate clause: ")
_WORD_PREFIXES = ("starts with: ", "in the main clause: ", "in a subordinate clause: ")


def readable(features: list[tuple[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Model features folded into what a reader recognises: (concept -> weight, content word -> weight).

    Concept features (in any clause) go to their concept; words, bigrams and clause-marked words
    go to their content words; context, length, shape, negation cues, punctuation and digit masks
    are dropped.
    """
    concepts: dict[str, float] = defaultdict(float)
    words: dict[str, float] = defaultdict(float)
    for name, w in features:
        prefix = next((p for p in _CONCEPT_PREFIXES if name.startswith(p)), None)
        if prefix:
            concepts[name[len(prefix):].replace(" ", "_")] += w
            continue
        if ": " in name:
            prefix = next((p for p in _WORD_PREFIXES if name.startswith(p)), None)
            if not prefix:
                continue  # previous/next sentence, negated, shape: not the sentence's own words
            name = name[len(prefix):]
        if name.startswith("length ") or name.startswith("("):
            continue
        parts = [p for p in name.split(" ") if is_content_word(p)]
        for p in parts:
            words[p] += w / len(parts)
    return dict(concepts), dict(words)


def _matches(doc) -> dict[str, list[tuple[int, int]]]:
    """Token spans of each concept ('concept:NAME'), of people terms and of never-for terms in a doc."""
    found: dict[str, list[tuple[int, int]]] = defaultdict(list)
    strings = doc.vocab.strings
    for key, s, e in _matcher()(doc):
        found[strings[key]].append((s, e))
    return found


def _in(spans: list[tuple[int, int]], first: int, last: int) -> list[tuple[int, int]]:
    return [(s, e) for s, e in spans if s >= first and e <= last]


def explain_text(text: str, labeller: NoteLabeller, top: int = 5) -> dict[str, Any]:
    """Everything `explain` shows, as data."""
    doc = get_nlp()(text)
    segs = segments_of(doc)
    proba = labeller.segment_probabilities(segs)
    contrib = contributions(labeller, segs)
    matches = _matches(doc)
    concepts = _concepts()
    guide = _guidance()
    titles = guide.get("titles", {})
    counts = {lab: 0 for lab in LABELS}
    out_segs = []
    for i, seg in enumerate(segs):
        label = LABELS[int(proba[i].argmax())]
        counts[label] += 1
        model_concepts, words = readable(contrib[i].get(label, []))
        # the codebook categories this sentence's own words match, with the words that matched
        matched: dict[str, list[str]] = {}
        for key, spans in matches.items():
            if key.startswith("concept:"):
                here = _in(spans, seg.first, seg.last)
                if here:
                    matched[key.split(":", 1)[1]] = sorted({doc[s:e].text.lower() for s, e in here})
        fitting = [c for c in matched if concepts[c]["leans"] == label]

        def strength(c: str, matched=matched, model_concepts=model_concepts, words=words) -> float:
            term_words = {w for t in matched[c] for w in t.split()}
            return model_concepts.get(c, 0.0) + sum(words.get(w, 0.0) for w in term_words)

        fitting.sort(key=lambda c: (-strength(c), c))
        category = None
        if fitting:
            c = fitting[0]
            category = {"concept": c, "title": titles.get(c, c.replace("_", " ")),
                        "codebook": _quote(concepts[c]["codebook"]), "words": matched[c]}
        because = []
        if category:
            because.append({"kind": "category", "feature": f"{category['title']} ({', '.join(category['words'])})",
                            "concept": category["concept"], "weight": round(strength(category["concept"]), 3)})
        shown = {w for t in (category["words"] if category else []) for w in t.split()}
        ranked_words = sorted(((w, v) for w, v in words.items() if v > 0 and w not in shown), key=lambda kv: -kv[1])
        because += [{"kind": "word", "feature": w, "weight": round(v, 3)}
                    for w, v in ranked_words[:max(0, top - len(because))]]
        entry = {
            "start": seg.start, "end": seg.end, "text": seg.text, "label": label,
            "p": {lab: round(float(proba[i][k]), 4) for k, lab in enumerate(LABELS)},
            "category": category,
            "because": because,
            "concepts": sorted(matched),
            "_about_people": bool(_in(matches.get("people", []), seg.first, seg.last)),
            "_admin": bool(_in(matches.get("never", []), seg.first, seg.last)),
        }
        out_segs.append(entry)
    _attach_guidance(out_segs, guide)
    share = change_share(counts)
    return {"label": note_label(share), "change_share": share, "counts": counts, "segments": out_segs,
            "summary": summary_line(counts, share)}


def _quote(codebook: str | list[str]) -> str:
    return codebook[0] if isinstance(codebook, list) else codebook


def _attach_guidance(segs: list[dict[str, Any]], guide: dict[str, Any]) -> None:
    """A suggestion where a change-focused account was plausibly possible; each one once, never many."""
    given: set[str] = set()
    limit = int(guide.get("max_per_note", 3))
    for s in segs:
        about, admin = s.pop("_about_people"), s.pop("_admin")
        cat = s["category"]
        if s["label"] != "procedural" or not cat or admin or not about or len(given) >= limit:
            continue
        text = guide["by_concept"].get(cat["concept"])
        if text and cat["concept"] not in given:
            given.add(cat["concept"])
            s["a_change_focused_account_would_record"] = text


def summary_line(counts: dict[str, int], share: float | None) -> str:
    n = sum(counts.values())
    if share is None:
        return (f"{n} segment(s), none procedural or change-focused: the note is unclassified "
                "(all plain observation, headings or fact).")
    return (f"{n} segment(s): {counts['procedural']} procedural, {counts['change_focused']} change-focused, "
            f"{counts['neutral']} neutral. Change share {share:.2f}: the recording reads as "
            f"{'change-focused' if share > 0.5 else 'procedural'} (codebook threshold 0.5).")


def verdict(ex: dict[str, Any]) -> str:
    """The one-line answer that heads every explanation."""
    label = ex["label"]
    if label == "unclassified":
        return "Verdict: unclassified (no procedural or change-focused sentences)."
    return (f"Verdict: {label.replace('_', '-')} recording (change share {ex['change_share']:.2f}; "
            "above 0.5 reads as change-focused).")


# --- a local page, so the second note is instant ----------------------------------------------

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_BODY = 2_000_000


def make_server(labeller: NoteLabeller, host: str = "127.0.0.1", port: int = 0, top: int = 5):
    """An HTTP server on the loopback interface only: GET shows a paste box, POST explains the note.

    The model is loaded once by the caller; notes never leave the machine, and are neither logged
    nor kept. Requests naming another host (DNS rebinding) are refused.
    """
    import socket
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs

    from .render import explain_html

    if host not in LOOPBACK:
        raise ValueError(f"{host}: explain --serve binds to this machine only (127.0.0.1, localhost or ::1)")

    class Handler(BaseHTTPRequestHandler):
        server_version = "supervise-nlp"

        def log_message(self, format, *args):  # noqa: A002 - notes are never logged
            pass

        def _host_ok(self) -> bool:
            name = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            return name in LOOPBACK

        def _send(self, code: int, body: str, ctype: str = "text/html; charset=utf-8") -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if not self._host_ok():
                return self._send(403, "forbidden", "text/plain")
            empty = {"label": "unclassified", "change_share": None, "counts": {}, "segments": [], "summary": ""}
            self._send(200, explain_html(empty, form=True))

        def do_POST(self):  # noqa: N802
            if not self._host_ok():
                return self._send(403, "forbidden", "text/plain")
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                return self._send(413, "note too long", "text/plain")
            raw = self.rfile.read(n).decode("utf-8", errors="replace")
            ctype = self.headers.get("Content-Type", "")
            text = parse_qs(raw).get("note", [""])[0] if "form-urlencoded" in ctype else raw
            if not text.strip():
                return self._send(400, "the note is empty", "text/plain")
            ex = explain_text(text, labeller, top=top)
            if "json" in (self.headers.get("Accept") or "") or self.path.rstrip("/") == "/json":
                self._send(200, json.dumps(ex, ensure_ascii=False), "application/json")
            else:
                self._send(200, explain_html(ex, form=True))

    class Server(HTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server((host, port), Handler)
