"""The offline labelling page: one HTML file, no server, no network, nothing stored elsewhere.

The sample's rows are inlined as JSON (never the model's label). A coder types their name, then
labels one segment at a time, shown between the segments before and after it: P, C or N sets the
label and moves on, U marks "unsure", the arrow keys (or the buttons) go back and forward. Labels
are kept in the browser's own storage for this page (so closing the tab loses nothing) and leave
it only through "Download labels (CSV)", a file ``validate`` reads directly, one coder per file.
"""

from __future__ import annotations

import hashlib
import json
from html import escape
from typing import Any

from .sample import CODEBOOK_SUMMARY, SECONDARY

PAGE_COLUMNS = ("row", "before", "segment", "after")


def _json_for_script(data: Any) -> str:
    """JSON that cannot close the script element or break a JavaScript string."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(rows: list[dict[str, Any]], design: dict[str, Any]) -> str:
    keep = [*PAGE_COLUMNS, *SECONDARY]
    data = [{k: r[k] for k in keep} for r in rows]
    sample_id = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    codebook = "".join(f"<dt>{escape(name.replace('_', '-'))}</dt><dd>{escape(text)}</dd>"
                       for name, text in CODEBOOK_SUMMARY)
    return (PAGE.replace("__DATA__", _json_for_script(data))
            .replace("__COLUMNS__", _json_for_script(keep))
            .replace("__SAMPLE__", sample_id)
            .replace("__CODEBOOK__", codebook)
            .replace("__N__", str(len(rows)))
            .replace("__DESIGN__", escape(design.get("description", ""))))


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline';
 style-src 'unsafe-inline'; img-src data:">
<title>Label segments (supervise-nlp)</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#222}
.ctx{color:#666;margin:.4rem 0}.seg{font-size:1.25rem;background:#fff7d6;padding:.6rem .8rem;
border-radius:.3rem;margin:.4rem 0}
.bar{height:.5rem;background:#eee;border-radius:.25rem}.bar>div{height:100%;background:#4a7;border-radius:.25rem}
button{font:inherit;padding:.3rem .8rem;margin:.2rem}button.on{background:#234;color:#fff}
#status{font-weight:bold}dt{font-weight:bold;margin-top:.4rem}dd{margin-left:1rem}.muted{color:#666;font-size:.9rem}
kbd{border:1px solid #999;border-radius:3px;padding:0 .3rem;font-size:.85rem}
</style></head><body>
<h1>Label segments</h1>
<p class="muted">Everything stays in this browser; nothing is sent anywhere. Keys: <kbd>P</kbd> procedural,
<kbd>C</kbd> change-focused, <kbd>N</kbd> neutral (each moves to the next segment), <kbd>U</kbd> unsure on/off,
<kbd>&larr;</kbd>/<kbd>&rarr;</kbd> back/forward.</p>
<p><label>Your name (goes in the downloaded file): <input id="coder" autocomplete="off"></label></p>
<div class="bar"><div id="bar" style="width:0"></div></div>
<p id="progress"></p>
<div id="card">
<div class="ctx" id="before"></div>
<div class="seg" id="segment"></div>
<div class="ctx" id="after"></div>
<p><button id="bP" data-l="procedural">P procedural</button>
<button id="bC" data-l="change_focused">C change-focused</button>
<button id="bN" data-l="neutral">N neutral</button><button id="bU">U unsure</button></p>
<p><button id="back">&larr; back</button><button id="next">forward &rarr;</button>
<span id="status"></span></p>
</div>
<p><button id="download">Download labels (CSV)</button> <span class="muted" id="saved"></span></p>
<details><summary>Codebook summary</summary><dl>__CODEBOOK__</dl></details>
<p class="muted">__N__ segments. Sample design: __DESIGN__.</p>
<script>
"use strict";
const ROWS = __DATA__;
const COLUMNS = __COLUMNS__;
const KEY = "supervise-nlp-labels-__SAMPLE__";
const NAMES = {procedural: "procedural", change_focused: "change-focused", neutral: "neutral"};
let state = {i: 0, labels: {}, unsure: {}, coder: ""};
try { const s = JSON.parse(localStorage.getItem(KEY) || "null"); if (s) state = Object.assign(state, s); } catch (e) {}
const $ = id => document.getElementById(id);
function save() { try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) {} }
function show() {
  const r = ROWS[state.i];
  $("before").textContent = r.before; $("segment").textContent = r.segment; $("after").textContent = r.after;
  const done = Object.keys(state.labels).length;
  $("progress").textContent = "Segment " + (state.i + 1) + " of " + ROWS.length + " \u2014 " + done + " labelled";
  $("bar").style.width = (100 * done / ROWS.length) + "%";
  const lab = state.labels[r.row];
  for (const b of ["bP", "bC", "bN"]) $(b).classList.toggle("on", $(b).dataset.l === lab);
  $("bU").classList.toggle("on", !!state.unsure[r.row]);
  $("status").textContent = lab ? "labelled " + NAMES[lab] + (state.unsure[r.row] ? " (unsure)" : "") : "";
  $("coder").value = state.coder;
}
function go(d) { state.i = Math.max(0, Math.min(ROWS.length - 1, state.i + d)); save(); show(); }
function label(l) { state.labels[ROWS[state.i].row] = l; save(); if (state.i < ROWS.length - 1) go(1); else show(); }
function unsure() { const k = ROWS[state.i].row; state.unsure[k] = !state.unsure[k]; save(); show(); }
function q(v) { v = v === undefined || v === null ? "" : String(v); return '"' + v.replace(/"/g, '""') + '"'; }
function csv() {
  const who = "coder: " + (state.coder.trim() || "unnamed");
  const head = ["row", "before", "segment", "after", who, who + " unsure"].concat(COLUMNS.slice(4));
  const lines = [head.map(q).join(",")];
  for (const r of ROWS) {
    const vals = [r.row, r.before, r.segment, r.after, state.labels[r.row] || "", state.unsure[r.row] ? "yes" : ""];
    for (const c of COLUMNS.slice(4)) vals.push(r[c]);
    lines.push(vals.map(q).join(","));
  }
  return "\ufeff" + lines.join("\r\n") + "\r\n";
}
function download() {
  const blob = new Blob([csv()], {type: "text/csv;charset=utf-8"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "labels-" + (state.coder.trim().replace(/[^A-Za-z0-9_-]+/g, "_") || "coder") + ".csv";
  document.body.appendChild(a); a.click(); a.remove();
  $("saved").textContent = Object.keys(state.labels).length + " labels downloaded";
}
document.addEventListener("keydown", e => {
  if (e.target === $("coder") || e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key.toLowerCase();
  if (k === "p") label("procedural"); else if (k === "c") label("change_focused");
  else if (k === "n") label("neutral"); else if (k === "u") unsure();
  else if (e.key === "ArrowRight") go(1); else if (e.key === "ArrowLeft") go(-1);
  else return;
  e.preventDefault();
});
for (const b of ["bP", "bC", "bN"]) $(b).addEventListener("click", () => label($(b).dataset.l));
$("bU").addEventListener("click", unsure);
$("back").addEventListener("click", () => go(-1));
$("next").addEventListener("click", () => go(1));
$("download").addEventListener("click", download);
$("coder").addEventListener("input", e => { state.coder = e.target.value; save(); });
show();
</script>
</body></html>
"""
