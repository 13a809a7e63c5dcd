//! The page: title and figures, the chart, the flamegraph and the top lines, in one file. The
//! flamegraph's SVG carries its own script (zoom, search): it sits in an iframe's `srcdoc` so
//! that its script finds its own document.

use std::fmt::Write;

/// The table under the flamegraph: a location, then numbers, per row.
pub struct Table {
    pub heading: String,
    /// The `id` of the table element.
    pub id: &'static str,
    pub columns: Vec<&'static str>,
    /// The first cell is text, the others are numbers (aligned right).
    pub rows: Vec<Vec<String>>,
    /// The one line shown when there is no row (an empty table read as a page that failed).
    pub empty: &'static str,
}

/// What the page shows.
pub struct Page<'a> {
    pub title: &'a str,
    /// Short facts under the title (command, peak, duration...), as (label, value).
    pub facts: Vec<(&'a str, String)>,
    pub chart_svg: Option<&'a str>,
    pub flamegraph_svg: &'a str,
    pub table: &'a Table,
}

pub fn render(page: &Page) -> String {
    let mut h = String::with_capacity(page.flamegraph_svg.len() * 2 + 16_384);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"generator\" content=\"memtrace {}\"><title>{}</title><style>{}</style></head><body>\n",
        env!("CARGO_PKG_VERSION"),
        escape(page.title),
        STYLE
    );
    let _ = write!(h, "<h1>{}</h1>\n<dl class=\"facts\">", escape(page.title));
    for (k, v) in &page.facts {
        let _ = write!(h, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
    }
    h.push_str("</dl>\n");
    if let Some(chart) = page.chart_svg {
        let _ = writeln!(h, "<section id=\"timeline\">{chart}</section>");
    }
    // The iframe is as tall as the picture, so the page scrolls rather than the frame.
    let height = svg_height(page.flamegraph_svg)
        .map(|h| format!(" style=\"height:{}px\"", h + 4))
        .unwrap_or_default();
    let _ = writeln!(
        h,
        "<section><iframe id=\"flamegraph\" title=\"flamegraph\"{height} srcdoc=\"{}\"></iframe></section>",
        escape(&frame_document(page.flamegraph_svg))
    );
    let t = page.table;
    let _ = write!(
        h,
        "<section><h2>{}</h2><table id=\"{}\"><thead><tr>",
        escape(&t.heading),
        t.id
    );
    for c in &t.columns {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr></thead><tbody>\n");
    if t.rows.is_empty() {
        let _ = writeln!(
            h,
            "<tr><td colspan=\"{}\">{}</td></tr>",
            t.columns.len(),
            escape(t.empty)
        );
    }
    for row in &t.rows {
        h.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if i == 0 { "" } else { " class=\"n\"" };
            let _ = write!(h, "<td{class}>{}</td>", escape(cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></section>\n</body></html>\n");
    h
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}\
dt{font-weight:bold}dd{margin:0;font-family:monospace}\
iframe#flamegraph{width:100%;height:70vh;border:1px solid #ccc;display:block}\
table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}\
td.n{text-align:right;font-family:monospace}";

/// The iframe's document: the SVG inline in an HTML page (in standards mode, without the SVG's
/// XML prolog and doctype) that gives it the frame's whole width; inferno's script then fits
/// the frames to that width.
fn frame_document(svg: &str) -> String {
    let body = svg.find("<svg").map_or(svg, |i| &svg[i..]);
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>{FRAME_STYLE}</style>\
         <script>{FRAME_SCRIPT}</script></head><body>{body}</body></html>"
    )
}

const FRAME_STYLE: &str = "html,body{margin:0;padding:0}svg{display:block;width:100%}";

/// inferno's script keeps the zoom in the URL (`history.replaceState`), which a `srcdoc`
/// document may not do: without this, every click on a frame throws a SecurityError.
const FRAME_SCRIPT: &str = "(function(){var r=history.replaceState.bind(history);\
history.replaceState=function(){try{r.apply(null,arguments)}catch(e){}}})();";

/// The `height` of the SVG's root element, in pixels.
fn svg_height(svg: &str) -> Option<u32> {
    let start = svg.find("<svg")?;
    let tag = &svg[start..start + svg[start..].find('>')?];
    let i = tag.find(" height=\"")? + " height=\"".len();
    let len = tag[i..].find('"')?;
    tag[i..i + len].parse().ok()
}

/// Text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_every_part_escaped() {
        let svg = "<?xml version=\"1.0\"?><!DOCTYPE svg><svg height=\"120\" onload=\"init(evt)\"><text>f&lt;T&gt;</text></svg>";
        let table = Table {
            heading: "Top lines".to_string(),
            id: "top-lines",
            columns: vec!["location", "bytes", "allocations"],
            empty: "(none)",
            rows: vec![vec![
                "f<T> at a.py:2".to_string(),
                "100".to_string(),
                "1".to_string(),
            ]],
        };
        let page = Page {
            title: "memtrace: run.bin",
            facts: vec![("Peak", "100 B".to_string())],
            chart_svg: Some("<svg id=\"chart\"></svg>"),
            flamegraph_svg: svg,
            table: &table,
        };
        let html = render(&page);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg id=\"chart\"></svg>"));
        // The SVG sits in an HTML document of its own, without its XML prolog, as tall as it.
        assert!(html.contains("<iframe id=\"flamegraph\" title=\"flamegraph\" style=\"height:124px\" srcdoc=\"&lt;!DOCTYPE html&gt;"));
        assert!(html.contains(
            "&lt;body&gt;&lt;svg height=&quot;120&quot; onload=&quot;init(evt)&quot;&gt;&lt;text&gt;f&amp;lt;T&amp;gt;&lt;/text&gt;&lt;/svg&gt;&lt;/body&gt;"
        ));
        assert!(!html.contains("&lt;?xml"));
        assert!(
            html.contains("<h2>Top lines</h2><table id=\"top-lines\"><thead><tr><th>location</th>")
        );
        assert!(html.contains(
            "<tr><td>f&lt;T&gt; at a.py:2</td><td class=\"n\">100</td><td class=\"n\">1</td></tr>"
        ));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no network"
        );
    }
}
