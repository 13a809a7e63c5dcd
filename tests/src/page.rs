//! Helpers for the tests of the HTML page: its text with the flamegraph's `srcdoc` decoded, the
//! flamegraph's frame titles, and the check that nothing loads from the network.

/// HTML text with the entities of attribute values decoded (the flamegraph is in a srcdoc).
pub fn unescaped(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The hover texts of the flamegraph's frames (the SVG's `<title>`s), decoded.
pub fn frame_titles(html: &str) -> Vec<String> {
    let svg = unescaped(html);
    svg.split("<g><title>")
        .skip(1)
        .filter_map(|t| t.split("</title>").next())
        .map(unescaped)
        .collect()
}

/// Nothing that would load from the network: no external scripts, styles, images or imports.
pub fn self_contained(html: &str) {
    for text in [html.to_string(), unescaped(html)] {
        let lower = text.to_lowercase();
        for bad in [
            "<script src",
            "<link",
            "<img",
            "@import",
            "url(http",
            "src=\"http",
            "src='http",
            "href=\"http",
            "href='http",
        ] {
            assert!(!lower.contains(bad), "the page loads something: {bad}");
        }
    }
}
