//! The interactive page of `memtrace flamegraph`: the summary strip, the controls, the chart to
//! pick a moment or a time range on, the flamegraph and the table of locations, drawn by the
//! page's own script (assets/page.js) from the data embedded as JSON ([`super::data`]). One
//! file, nothing from the network.

use super::html::escape;

const STYLE: &str = include_str!("assets/page.css");
const SCRIPT: &str = include_str!("assets/page.js");

/// The page of the data `json` ([`super::data::build_json`]) of the capture `path`.
pub fn render(path: &str, json: &str) -> String {
    let title = format!("memtrace: {}", crate::report::visible::escape(path));
    let mut h = String::with_capacity(json.len() + STYLE.len() + SCRIPT.len() + 8192);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!(
        "<meta name=\"generator\" content=\"memtrace {}\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&title)
    ));
    h.push_str(&format!("<h1>{}</h1>\n", escape(&title)));
    h.push_str(BODY);
    h.push_str("<script type=\"application/json\" id=\"memtrace-data\">");
    h.push_str(json);
    h.push_str("</script>\n<script>");
    h.push_str(SCRIPT);
    h.push_str("</script>\n</body></html>\n");
    h
}

/// The page's elements; the script fills them.
const BODY: &str = r#"<dl class="facts" id="facts"></dl>
<div id="controls">
<fieldset class="views"><legend>show</legend><span id="views" class="views"></span></fieldset>
<fieldset><legend>threads</legend><select id="threads"></select></fieldset>
<fieldset><legend>frames</legend>
<label title="Icicle: the outermost frames at the top"><input type="checkbox" id="inverted"> inverted</label>
<label title="Hide Python's import system (&lt;frozen importlib._bootstrap&gt; and the like)"><input type="checkbox" id="imports"> hide import machinery</label>
<label title="In --native captures: hide the interpreter's own native frames between Python frames"><input type="checkbox" id="interp"> hide interpreter frames</label>
<label title="Hide the allocations with no frame recorded"><input type="checkbox" id="unknown"> hide &lt;unknown&gt;</label>
</fieldset>
<fieldset><legend>search</legend><input type="search" id="filter" placeholder="function, file, thread" size="24"></fieldset>
</div>
<div id="selection"><span id="what"></span><button type="button" id="clear">clear the selection</button></div>
<section id="timeline"><svg id="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="memory over time"></svg>
<div id="legend"></div>
<div class="note"><span id="resolution"></span> Bars: each bucket's high-water mark, the largest locations coloured (the legend); line: live heap; green: resident size; red dot: the peak.</div></section>
<section id="flame"><div id="flamebar"><div id="details">Hover a frame for its bytes; click it to zoom.</div><button type="button" id="unzoom" class="hide">Reset zoom</button></div>
<svg id="flamegraph" xmlns="http://www.w3.org/2000/svg"></svg>
<div class="note" id="merged"></div></section>
<section><h2>Locations</h2><div id="tablebar" class="note"><span id="rows"></span><span>Click a column to sort; the search box filters.</span></div>
<table id="locations"><thead><tr></tr></thead><tbody></tbody></table></section>
<section id="by-type" class="hide"><h2>By type</h2><div class="note" id="types-covered"></div>
<div id="types-moments"></div></section>
"#;
