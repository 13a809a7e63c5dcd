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

/// The data the interactive page embeds (its `<script type="application/json">`), parsed.
pub fn page_data(html: &str) -> serde_json::Value {
    let start = "<script type=\"application/json\" id=\"memtrace-data\">";
    let json = html
        .split(start)
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("the page embeds its data");
    serde_json::from_str(json).expect("the page's data is JSON")
}

/// The bytes of each of the page's (stack, thread) groups live at time bucket `b`: the
/// groups' histories summed as the page's script does.
pub fn live_at_bucket(data: &serde_json::Value, b: u64) -> Vec<u64> {
    let groups = data["groups"].as_array().expect("groups");
    groups
        .iter()
        .map(|g| {
            let mut total = 0;
            for h in g["live"].as_array().expect("live") {
                let h: Vec<u64> = h
                    .as_array()
                    .expect("a history")
                    .iter()
                    .filter_map(|v| v.as_u64())
                    .collect();
                let mut value = 0;
                for change in h[1..].chunks(3) {
                    if change[0] > b {
                        break;
                    }
                    value = change[1];
                }
                total += value;
            }
            total
        })
        .collect()
}

/// The name of the innermost frame of a group.
pub fn innermost(data: &serde_json::Value, group: &serde_json::Value) -> String {
    let stack = &data["stacks"][group["s"].as_u64().expect("s") as usize];
    let last = stack
        .as_array()
        .and_then(|s| s.last())
        .and_then(|f| f.as_u64())
        .expect("a frame");
    data["frames"][last as usize][0]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// What the page says was live at each bucket's high-water mark adds up to that mark, and the
/// peak's bucket holds the peak.
pub fn each_bucket_holds_its_high_water_mark(data: &serde_json::Value, hwm: &[u64], peak: u64) {
    let b = hwm
        .iter()
        .position(|&v| v == peak)
        .expect("the peak's bucket") as u64;
    assert_eq!(live_at_bucket(data, b).iter().sum::<u64>(), peak);
    for (b, &v) in hwm.iter().enumerate() {
        assert_eq!(
            live_at_bucket(data, b as u64).iter().sum::<u64>(),
            v,
            "bucket {b}"
        );
    }
}
