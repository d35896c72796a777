"""The offline labelling page, in a real headless browser.

Needs Chromium and Playwright for Python (pip install playwright; on Debian: apt-get install
chromium; Playwright drives that browser through ``executable_path``, no download needed). The
test is skipped, with the reason, where either is missing.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from supervise_nlp.sample import Population, draw, sample_rows
from supervise_nlp.validate import read_labelled

CHROMIUM = os.environ.get("SUPERVISE_NLP_CHROMIUM") or next(
    (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None)

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None,
                       reason="Playwright for Python is not installed (pip install playwright)"),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium, or set "
                                                "SUPERVISE_NLP_CHROMIUM to a Chromium/Chrome binary)"),
]

NOTES = [
    ("n1", "Team A", "Present: SW and Mum. Mum said she wants to be the parent she never had. SW to update the plan "
                     "by Friday. We talked about what helps on hard days."),
    ("n2", "Team B", "Core group booked for 12/03.\nMum </script> said \"things are better\".\nHome conditions seen."),
]


def _page(tmp_path):
    from supervise_nlp.labelpage import render_page
    from supervise_nlp.segment import segment_texts

    pop = Population()
    rng = np.random.default_rng(0)
    for (nid, team, text), segs in zip(NOTES, segment_texts([t for _, _, t in NOTES])):
        out = []
        for s in segs:
            p = rng.dirichlet([1, 1, 1])
            out.append({"start": s.start, "end": s.end, "label": ["procedural", "change_focused", "neutral"][
                int(p.argmax())], "p": dict(zip(["procedural", "change_focused", "neutral"], p.tolist()))})
        pop.add({"id": nid, "team": team, "worker": "W"}, text, out, nid)
    picked, pi, strata, design = draw(pop, 6, seed=1)
    rows = sample_rows(pop, picked, pi, strata, coders=1)
    page = tmp_path / "label.html"
    page.write_text(render_page(rows, design), "utf-8")
    return page, rows


def test_label_by_keyboard_and_download_the_csv(tmp_path):
    page_path, rows = _page(tmp_path)
    html = page_path.read_text("utf-8")
    assert "procedural\", \"change" not in html.split("const ROWS")[1].split("const COLUMNS")[0]  # no model label
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            assert page.text_content("#segment") == rows[0]["segment"]
            assert page.text_content("#after") == rows[0]["after"]
            page.fill("#coder", "Sam Jones")
            page.locator("body").click()
            page.keyboard.press("p")  # row 1 procedural -> row 2
            page.keyboard.press("c")  # row 2 change-focused -> row 3
            page.keyboard.press("u")  # row 3 unsure ...
            page.keyboard.press("n")  # ... and neutral -> row 4
            page.keyboard.press("ArrowLeft")
            assert page.text_content("#status") == "labelled neutral (unsure)"
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("c")  # relabel row 1 -> row 2
            assert "2 of 6" in page.text_content("#progress") and "3 labelled" in page.text_content("#progress")
            page.reload()  # labels survive a reload (kept in this browser only)
            # the page restores its labels once its script has run: wait for that (a loaded machine is slow)
            page.wait_for_function("document.querySelector('#progress').textContent.includes('3 labelled')",
                                   timeout=15000)
            assert "3 labelled" in page.text_content("#progress")
            with page.expect_download() as info:
                page.click("#download")
            download = info.value
            target = tmp_path / download.suggested_filename
            download.save_as(target)
        finally:
            browser.close()
    assert target.name == "labels-Sam_Jones.csv"
    assert all(u.startswith(("file:", "blob:", "data:")) for u in requests), requests  # nothing left the machine
    items, units = read_labelled([str(target)])
    got = {it.row: (it.coders, it.unsure) for it in items}
    r1, r2, r3 = (r["row"] for r in rows[:3])
    assert got[r1][0] == {"coder: Sam Jones": "change_focused"}
    assert got[r2][0] == {"coder: Sam Jones": "change_focused"}
    assert got[r3] == ({"coder: Sam Jones": "neutral"}, {"coder: Sam Jones": True})
    assert len(items) == len(units) == 3  # rows not labelled yet are left out
    by_row = {it.row: it for it in items}
    for r, u in zip(rows[:3], units):
        it = by_row[r["row"]]
        assert it.note_id == r["note_id"] and it.start == r["start"]
        assert it.weight * r["inclusion_probability"] == pytest.approx(1, rel=1e-4)
        s0, s1 = u.spans[0]
        assert u.text[s0:s1] == r["segment"]
