//! The flamegraph picture itself: inferno's interactive SVG (click to zoom, search, the bytes of
//! a frame on hover).

use inferno::flamegraph::{self, Direction, Options, TextTruncateDirection};

/// How the flamegraph is drawn.
pub struct Look<'a> {
    pub title: &'a str,
    pub subtitle: Option<&'a str>,
    /// Icicle: the roots at the top.
    pub inverted: bool,
}

/// The height of a frame, in pixels.
pub const FRAME_HEIGHT: usize = 16;

/// The SVG of collapsed lines (`stack bytes`, or `stack before after` for a differential one).
pub fn render(lines: &[String], look: &Look) -> std::io::Result<String> {
    draw(lines, look, false)
}

/// The SVG of collapsed lines already sorted by stack, drawn in their order.
pub fn render_sorted(lines: &[String], look: &Look) -> std::io::Result<String> {
    draw(lines, look, true)
}

fn draw(lines: &[String], look: &Look, sorted: bool) -> std::io::Result<String> {
    let mut opt = Options::default();
    opt.no_sort = sorted;
    opt.frame_height = FRAME_HEIGHT;
    // A long label keeps its start, the function's name (`f at /long/path/app.py:12`).
    opt.text_truncate_direction = TextTruncateDirection::Right;
    opt.title = look.title.to_string();
    opt.subtitle = look.subtitle.map(str::to_string);
    opt.count_name = "bytes".to_string();
    opt.name_type = "Frame:".to_string();
    opt.hash = true;
    opt.deterministic = true;
    if look.inverted {
        opt.direction = Direction::Inverted;
    }
    let mut out = Vec::new();
    let empty = lines.is_empty();
    if empty {
        // inferno refuses an empty profile: draw one empty frame instead.
        let empty = ["(no memory in this view) 1".to_string()];
        flamegraph::from_lines(&mut opt, empty.iter().map(String::as_str), &mut out)
    } else {
        flamegraph::from_lines(&mut opt, lines.iter().map(String::as_str), &mut out)
    }
    .map_err(std::io::Error::other)?;
    let svg = String::from_utf8(out).map_err(std::io::Error::other)?;
    // The empty frame's one sample is not a byte the view holds.
    Ok(match empty {
        true => zero_bytes(&svg),
        false => svg,
    })
}

/// An empty picture's hover texts with the stand-in sample read as no bytes.
fn zero_bytes(svg: &str) -> String {
    svg.replace(" (1 bytes, 100%)", " (0 bytes)")
        .replace(" (1 bytes, 100.00%)", " (0 bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_title_are_in_the_picture() {
        let lines = vec!["main;alloc_big 9000".to_string(), "main 1000".to_string()];
        let svg = render(
            &lines,
            &Look {
                title: "Memory at the peak",
                subtitle: None,
                inverted: false,
            },
        )
        .expect("svg");
        assert!(svg.starts_with("<?xml"), "{}", &svg[..100]);
        assert!(svg.contains("Memory at the peak"));
        assert!(svg.contains("alloc_big"));
        assert!(svg.contains("9,000 bytes"), "hover text in bytes");
        let empty = render(
            &[],
            &Look {
                title: "t",
                subtitle: None,
                inverted: true,
            },
        )
        .expect("an empty picture");
        // Its stand-in sample is no byte of the view.
        assert!(
            empty.contains("(no memory in this view) (0 bytes)"),
            "{empty}"
        );
        assert!(!empty.contains("1 bytes"), "{empty}");
    }
}
