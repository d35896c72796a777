"""The report as a head of service reads it (issue 13): plain words, one unit, date order, mirroring
for real type names, a header that says what the report rests on, accessible charts, and a page
that fits a 390 px phone and prints on A4 (checked in headless Chromium when it is installed)."""

import csv
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from supervise_nlp.cli import main
from supervise_nlp.note_types import kind_of, parse_type_map
from supervise_nlp.report_html import report_html
from supervise_nlp.report_words import headline, milestone_words, pct_range, points_range, report_findings


def run(*args, ok=True):
    res = CliRunner().invoke(main, ["report", *map(str, args)])
    if ok:
        assert res.exit_code == 0, res.output
    return res


FAST = ("--bootstrap", "100", "--permutations", "99")


@pytest.fixture(scope="module")
def page(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "r.html"
    run(data / "classified.jsonl", "--format", "html", "-o", out, "--min-notes", "1", "--milestone", "2025-04-01",
        *FAST)
    return out.read_text("utf-8")


# --- trends in date order ---------------------------------------------------------------------


def test_months_run_in_date_order_in_json_csv_table_and_html(data):
    args = (data / "classified.jsonl", "--by", "month", "--min-notes", "1", "--no-culture", *FAST)
    rep = json.loads(run(*args, "--format", "json").stdout)
    months = [g["key"]["month"] for g in rep["groups"]]
    assert months == sorted(months) and rep["groups_order"] == "date"
    by_balance = [g["key"]["month"] for g in sorted(rep["groups"], key=lambda g: g["balance"])]
    assert by_balance != months  # so the order is really by date, not by balance
    rows = list(csv.DictReader(io.StringIO(run(*args, "--format", "csv").stdout)))
    assert [r["month"] for r in rows[:-1]] == months and rows[-1]["month"] == "overall"
    table = run(*args).stdout
    assert [table.index(m) for m in months] == sorted(table.index(m) for m in months)
    assert "Rows in date order" in " ".join(table.split())
    html = run(*args, "--format", "html").stdout
    body = html[html.index("<tbody>"):]
    assert [body.index(f">{m}<") for m in months] == sorted(body.index(f">{m}<") for m in months)
    # teams keep balance order
    teams = json.loads(run(data / "classified.jsonl", "--min-notes", "1", "--no-culture", *FAST,
                           "--format", "json").stdout)
    assert teams["groups_order"] == "balance"
    bal = [g["balance"] for g in teams["groups"]]
    assert bal == sorted(bal)


def _rep(p_value, by="month"):
    groups = [{"key": {by: f"2025-0{i}"}, "balance": b, "notes": 10, "balance_ci": [b - .1, b + .1]}
              for i, b in ((1, .3), (2, .6), (3, .45))]
    return {"by": [by], "groups": groups, "overall": {"notes": 30, "workers": 6, "balance": .45,
                                                      "balance_ci": [.4, .5], "balance_ci_describes":
                                                      "this group, allowing for differences between its workers"},
            "comparison": {"overall": {"p_value": p_value, "groups": 3, "unit": "workers", "test": "t"},
                           "pairwise": []}, "held_back": {"groups": 0}, "min_notes": 5}


def test_headline_gives_no_range_when_groups_do_not_differ():
    same = " ".join(headline(_rep(0.4)))
    assert "no clear difference" in same and "(2025-01)" not in same and "(2025-02)" not in same
    differ = " ".join(headline(_rep(0.001)))
    assert "from 30% (2025-01) to 60% (2025-02)" in differ
    # one unit: percentages, intervals as "40% and 50%"
    assert "45%" in same and "between 40% and 50%" in same and not re.search(r"\b0\.\d", same)


# --- the milestone ----------------------------------------------------------------------------


def _ms(change, ci, within=None):
    return {"date": "2025-03-01", "before": {"balance": .45}, "after": {"balance": .45 + change},
            "change": change, "change_ci": ci, "within": within or {}}


def test_milestone_says_no_clear_change_when_the_interval_spans_zero_and_nothing_contradicts_it():
    words = " ".join(milestone_words(_ms(0.002, [-0.03, 0.04], {
        "change": 0.001, "change_ci": [-0.02, 0.02], "verdict": "no clear change", "workers_both_sides": 8,
        "workers_before_only": 1, "workers_after_only": 2})))
    assert words.startswith("Since 1 March 2025: no clear change")
    assert "45% before and 45% after" in words and "−3 to +4 points" in words
    for contradiction in ("rose", "fell", "moved", "shift", "may come"):
        assert contradiction not in words
    rise = " ".join(milestone_words(_ms(0.11, [0.07, 0.15])))
    assert "rose clearly" in rise and "no clear change" not in rise


def test_milestone_verdict_in_json_and_table(data):
    rep = json.loads(run(data / "classified.jsonl", "--format", "json", "--milestone", "2025-04-01", *FAST).stdout)
    ms = rep["culture"]["trend"]["milestone"]
    lo, hi = ms["change_ci"]
    assert ms["verdict"] == ("no clear change" if lo <= 0 <= hi else "a clear rise" if lo > 0 else "a clear fall")
    table = run(data / "classified.jsonl", "--milestone", "2025-04-01", *FAST).stdout
    assert "Since 1 April 2025" in table


# --- mirroring for the types people record ------------------------------------------------------


@pytest.mark.parametrize("name,kind", [
    ("Home Visit", "visit"), ("Office Visit", "visit"), ("Visit - home", "visit"), ("HV", "visit"),
    ("visit", "visit"), ("Supervision", "supervision"), ("supervision session", "supervision"),
    ("1:1 Supervision", "supervision"), ("Core group meeting", None), ("Supervision visit", None)])
def test_common_type_names(name, kind):
    assert kind_of(name) == kind


def test_type_map_and_bad_values():
    m = parse_type_map(["Doorstep=visit", " Reflective Space = supervision", "Home Visit=other"])
    assert kind_of("doorstep", m) == "visit" and kind_of("Reflective space", m) == "supervision"
    assert kind_of("Home Visit", m) is None  # 'other' takes a name out
    for bad in ("Home Visit", "=visit", "Doorstep=meeting"):
        with pytest.raises(ValueError):
            parse_type_map([bad])


def _retyped(data, tmp_path, names):
    out = tmp_path / "typed.jsonl"
    with open(data / "classified.jsonl", encoding="utf-8") as fh, open(out, "w", encoding="utf-8") as w:
        for i, line in enumerate(fh):
            rec = json.loads(line)
            rec["type"] = names[rec["type"]][i % len(names[rec["type"]])]
            w.write(json.dumps(rec) + "\n")
    return out


def test_mirroring_found_for_realistic_type_names(data, tmp_path):
    base = json.loads(run(data / "classified.jsonl", "--format", "json", "--min-notes", "1", *FAST).stdout)
    typed = _retyped(data, tmp_path, {"supervision": ["Supervision", "supervision session"],
                                      "visit": ["Home Visit", "Office Visit", "HV", "Visit - home"]})
    rep = json.loads(run(typed, "--format", "json", "--min-notes", "1", *FAST).stdout)
    mir = rep["culture"]["mirroring"]
    assert mir["pearson_r"] == pytest.approx(base["culture"]["mirroring"]["pearson_r"])
    assert set(mir["types_read_as"]["visit"]) == {"Home Visit", "Office Visit", "HV", "Visit - home"}
    # --by type keeps the types as recorded
    by_type = json.loads(run(typed, "--format", "json", "--by", "type", "--min-notes", "1", "--no-culture",
                             *FAST).stdout)
    assert "Home Visit" in {g["key"]["type"] for g in by_type["groups"]}


def test_mirroring_says_why_not_and_type_map_fixes_it(data, tmp_path):
    odd = _retyped(data, tmp_path, {"supervision": ["Reflective space"], "visit": ["Doorstep"]})
    rep = json.loads(run(odd, "--format", "json", "--min-notes", "1", *FAST).stdout)
    reason = rep["culture"]["mirroring"]["reason"]
    assert "no note type was recognised" in reason and "'Doorstep'" in reason and "--type-map" in reason
    html = run(odd, "--format", "html", "--min-notes", "1", *FAST).stdout
    assert "could not be worked out" in html and "Doorstep" in html
    fixed = json.loads(run(odd, "--format", "json", "--min-notes", "1", "--type-map", "Doorstep=visit",
                           "--type-map", "reflective space=supervision", *FAST).stdout)
    assert "pearson_r" in fixed["culture"]["mirroring"] and fixed["about"]["type_map"]
    few = json.loads(run(data / "classified.jsonl", "--format", "json", *FAST).stdout)  # min-notes 5
    assert "at least 5" in few["culture"]["mirroring"]["reason"]
    bad = run(odd, "--type-map", "Doorstep", ok=False)
    assert bad.exit_code == 2 and "NAME=KIND" in bad.output


# --- the page -----------------------------------------------------------------------------------


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("style", "svg")

    def handle_endtag(self, tag):
        self.skip -= tag in ("style", "svg")

    def handle_data(self, d):
        if not self.skip:
            self.parts.append(d)


def _text(html):
    p = _Text()
    p.feed(html)
    return " ".join(" ".join(p.parts).split())


def test_leads_with_plain_sentences_and_keeps_methods_for_the_end(page):
    text = _text(page)
    methods = text.index("How these figures were made")
    lead = text[:methods]
    assert "What they do not mean" in lead and "likely to lie between" in lead
    for jargon in ("Holm", "permutation", "mixed model", "macro-F1", "kappa", "bootstrap", "p = "):
        assert jargon not in lead, jargon
        assert jargon in text[methods:] or jargon == "p = "
    # one unit: no bare proportions like 0.42 in the lead or the table, intervals written "38% to 45%"
    top = _text(page[page.index("class=lead"):page.index("</table>")])
    assert not re.search(r"(?<![\d.])0\.\d\d(?!\d)", top)
    assert re.search(r"\d+% to \d+%", top)


def test_every_column_defined(page):
    text = _text(page)
    defs = text[text.index("What the columns mean"):]
    for title in ("Notes", "Workers", "Procedural sentences", "Change-focused sentences", "Neutral sentences",
                  "Balance", "Likely range (95% interval)", "Change-focused notes"):
        assert title in text[:text.index("What the columns mean")] and title in defs
    assert "change-focused sentences outnumber procedural ones" in defs


def test_header_says_date_inputs_model_validation_and_naming(page):
    head = _text(page[:page.index("class=lead")])
    assert re.search(r"Made \d{1,2} [A-Z][a-z]+ \d{4}", head)
    assert "classified.jsonl (20)" in head and "20 notes labelled of 20 records" in head
    assert "supervise-nlp 0." in head and re.search(r"labelled \d+% of sentences", head)
    assert "accuracy on these notes is unmeasured" in head
    assert "Named: this report names individual workers" in head


def test_pseudonymised_header(data, tmp_path):
    html = run(data / "classified.jsonl", "--format", "html", "--pseudonymise", "--key-file", tmp_path / "k",
               "--min-notes", "1", "--no-culture", *FAST).stdout
    assert "Pseudonymised: workers appear as keyed codes" in html and "Asha" not in html


def test_validation_block_shown_when_present(data):
    rep = json.loads(run(data / "classified.jsonl", "--format", "json", "--min-notes", "1", "--no-culture",
                         *FAST).stdout)
    rep["validation"] = {"validated": True, "statement": "Checked against 300 segments labelled by 2 of your "
                         "staff: kappa 0.81."}
    for g in rep["groups"]:
        g["corrected"] = {"balance": 0.5, "balance_ci": [0.4, 0.6]}
    html = report_html(rep, {})
    assert "Checked against 300 segments" in html and "unmeasured" not in html
    assert "Corrected balance" in html and "50% (40% to 60%)" in html


def test_charts_have_alt_text_a_labelled_50_line_and_the_tables_order(page):
    svgs = re.findall(r"<svg[^>]*>", page)
    assert svgs and all('role="img"' in s and 'aria-label="' in s for s in svgs)
    assert page.count("<figcaption>") >= 3  # balance, mirroring, trend
    first = page[page.index("<figure"):page.index("</figure>")]
    assert ">50%<" in first.replace("\n", "") or "50%:" in first or "50%</text>" in first
    wide = first[first.index("class=wide"):first.index("class=narrow")]
    table = page[page.index("<tbody>"):]
    teams = re.findall(r"<th scope=row>(T\d)</th>", table)[:4]
    in_chart = sorted(teams, key=lambda t: wide.index(f">{t}<"))
    assert in_chart == teams  # the chart runs top to bottom in the table's order
    # the trend and mirroring charts have a text equivalent: their figures in a table
    assert "The figures behind the chart" in page and "Balance by month" in page


def test_responsive_and_print_styles(page):
    css = page[page.index("<style>"):page.index("</style>")]
    assert "@media (max-width:40rem)" in css and ".narrow{display:block}" in css
    assert "class=scroll" in page and ".scroll{overflow-x:auto" in css
    assert "@page{size:A4 portrait" in css and "thead{display:table-header-group}" in css
    assert "break-after:avoid" in css and "figure.chart" in css and "break-inside:avoid" in css
    assert "<thead>" in page


def test_intervals_in_words():
    assert pct_range([0.384, 0.451]) == "38% to 45%" and pct_range([None, None]) == "not estimated"
    assert points_range([-0.031, 0.04]) == "−3 to +4 points"


def test_findings_are_plain_and_the_technical_version_keeps_the_statistics(data):
    rep = json.loads(run(data / "classified.jsonl", "--format", "json", "--min-notes", "1", *FAST).stdout)
    plain, tech = " ".join(report_findings(rep)), " ".join(report_findings(rep, technical=True))
    assert "p = " not in plain and "p = " in tech


# --- as people see it: headless Chromium ------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

MEASURE = """<script>
(function(){var d=document.documentElement, vw=window.innerWidth, small=99, over=[];
document.querySelectorAll('svg text').forEach(function(t){var r=t.getBoundingClientRect();
 if(r.width>0&&r.height>0){var fs=parseFloat(getComputedStyle(t).fontSize)*
 (t.ownerSVGElement.getBoundingClientRect().width/t.ownerSVGElement.viewBox.baseVal.width);
 small=Math.min(small,fs);}});
document.querySelectorAll('body *').forEach(function(e){var r=e.getBoundingClientRect();
 if(e.closest('.scroll')||(e.ownerSVGElement&&e.tagName!=='svg'))return;
 if(r.width>0&&r.right>vw+1)over.push(e.tagName+'.'+String(e.className));});
var o=document.createElement('pre');o.id='measure';
o.textContent=JSON.stringify({vw:vw,sw:d.scrollWidth,small:small,over:over.slice(0,5)});
document.body.appendChild(o);if(window.parent!==window)window.parent.postMessage(o.textContent,'*');})();
</script>"""

# headless Chromium will not make a window narrower than 500 px, so the phone is a 390 px frame
FRAME = """<!doctype html><html><body style="margin:0">
<iframe src="probe.html" style="width:WIDTHpx;height:900px;border:0"></iframe>
<script>window.addEventListener('message',function(e){var p=document.createElement('pre');p.id='measure';
p.textContent=e.data;document.body.appendChild(p);});</script></body></html>"""


def _measure(html_path, width):
    frame = html_path.with_name(f"frame{width}.html")
    frame.write_text(FRAME.replace("WIDTH", str(width)), "utf-8")
    res = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--allow-file-access-from-files", f"--window-size={max(width, 1280)},1000",
                          "--virtual-time-budget=5000", "--dump-dom", frame.as_uri()],
                         capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="measure">(.*?)</pre>', res.stdout)
    assert m, res.stderr[-2000:]
    return json.loads(m.group(1).replace("&quot;", '"'))


@pytest.mark.skipif(not CHROMIUM, reason="headless Chromium is not installed (apt-get install chromium)")
def test_no_horizontal_overflow_on_a_390px_phone_and_legible_chart_labels(data, tmp_path):
    out = tmp_path / "r.html"
    run(data / "classified.jsonl", "--format", "html", "-o", out, "--min-notes", "1", "--milestone", "2025-04-01",
        *FAST)
    html = out.read_text("utf-8")
    # a long team name must wrap, not push the page sideways
    html = html.replace(">T1<", ">Harrowden Youth Justice and Leaving Care Service (North and West)<")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", MEASURE + "</body>"), "utf-8")
    phone = _measure(probe, 390)
    assert phone["vw"] == 390
    assert phone["sw"] <= phone["vw"], phone  # nothing wider than the screen
    assert not phone["over"], phone
    assert phone["small"] >= 10, phone  # chart labels at least 10 px on the phone
    desk = _measure(probe, 1280)
    assert desk["sw"] <= desk["vw"] and desk["small"] >= 9, desk
