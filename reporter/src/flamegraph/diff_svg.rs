//! The differential flamegraph: inferno draws the stacks of NEW (width: NEW bytes) coloured by
//! the change of each frame's own bytes (red grew, blue shrank), and each frame's hover text is
//! then replaced by its bytes before and after and the change.
//!
//! inferno's own hover text gives the change as a share of the whole picture; to give each
//! frame's bytes before and after instead, the stacks are laid out here as inferno lays them
//! out (sorted, each frame spanning the lines that pass through it), which says where each frame
//! lands: its depth and its start in NEW bytes, which inferno writes on the frame (`fg:x`).

use super::diff_fold::Pair;
use super::html::escape;
use super::svg::{self, Look, FRAME_HEIGHT};
use crate::report::diff::Change;
use crate::report::human;
use std::collections::HashMap;

/// (depth, start in NEW bytes) → a frame's name and its bytes before and after. Depth 0 is the
/// root ("all").
pub type Frames = HashMap<(usize, u64), (String, Pair)>;

/// The SVG of differential stacks (`outer;...;inner`, own bytes before and after).
pub fn render(mut stacks: Vec<(String, Pair)>, look: &Look) -> std::io::Result<String> {
    stacks.sort_by(|a, b| a.0.cmp(&b.0));
    if stacks.iter().all(|(_, p)| p.after == 0) {
        // Nothing in NEW to draw: inferno's empty picture.
        return svg::render(&[], look);
    }
    let frames = layout(&stacks);
    let lines: Vec<String> = stacks
        .iter()
        .map(|(stack, p)| format!("{stack} {} {}", p.before, p.after))
        .collect();
    let picture = svg::render_sorted(&lines, look)?;
    Ok(retitle(&picture, look.inverted, &frames))
}

/// Where inferno draws the frames of sorted stacks: adjacent stacks share the frames of their
/// common prefix; a frame starts where the time (the NEW bytes of the stacks before it) stands
/// when it opens, and holds the bytes of every stack through it. Frames without NEW bytes are
/// not drawn, and not listed.
pub fn layout(sorted: &[(String, Pair)]) -> Frames {
    let mut frames = Frames::new();
    let mut all = Pair::default();
    // The open frames, outermost first: (name, start, bytes).
    let mut open: Vec<(&str, u64, Pair)> = Vec::new();
    let mut time = 0u64;
    let close = |frames: &mut Frames, depth: usize, (name, start, p): (&str, u64, Pair)| {
        if p.after > 0 {
            frames.insert((depth, start), (name.to_string(), p));
        }
    };
    for (stack, p) in sorted {
        let names: Vec<&str> = stack.split(';').collect();
        let shared = open
            .iter()
            .zip(&names)
            .take_while(|(o, n)| o.0 == **n)
            .count();
        while open.len() > shared {
            let depth = open.len();
            let frame = open.pop().expect("open frame");
            close(&mut frames, depth, frame);
        }
        for name in &names[shared..] {
            open.push((*name, time, Pair::default()));
        }
        for frame in &mut open {
            frame.2.add(*p);
        }
        all.add(*p);
        time += p.after;
    }
    while let Some(frame) = open.pop() {
        close(&mut frames, open.len() + 1, frame);
    }
    frames.insert((0, 0), ("all".to_string(), all));
    frames
}

/// A frame's hover text: `name (before → after bytes, change, percent)`. It ends in one
/// parenthesis without another inside, which inferno's script strips to get the name.
pub fn title(name: &str, p: Pair) -> String {
    let c = Change::new(p.before, p.after);
    let sign = if c.change < 0 { "-" } else { "+" };
    format!(
        "{name} ({} → {} bytes, {sign}{} bytes, {})",
        human::count(p.before),
        human::count(p.after),
        human::count(c.change.unsigned_abs()),
        c.percent_text()
    )
}

/// The SVG with each listed frame's `<title>` replaced by [`title`]. A frame is a `<g>` holding
/// `<title>…</title><rect … y="Y" … fg:x="X" …/>`; its depth comes from its distance in Y to
/// the root's row.
fn retitle(svg: &str, inverted: bool, frames: &Frames) -> String {
    let found = frame_titles(svg);
    let Some(root_y) = (if inverted {
        found.iter().map(|f| f.y).min()
    } else {
        found.iter().map(|f| f.y).max()
    }) else {
        return svg.to_string();
    };
    let mut out = String::with_capacity(svg.len() + svg.len() / 8);
    let mut at = 0;
    for f in &found {
        let depth = (f.y.abs_diff(root_y) as usize) / FRAME_HEIGHT;
        if let Some((name, p)) = frames.get(&(depth, f.x)) {
            out.push_str(&svg[at..f.text.start]);
            out.push_str(&escape(&title(name, *p)));
            at = f.text.end;
        }
    }
    out.push_str(&svg[at..]);
    out
}

/// A frame found in inferno's SVG: where its title text is, its row and its start.
struct FoundFrame {
    text: std::ops::Range<usize>,
    y: i64,
    x: u64,
}

fn frame_titles(svg: &str) -> Vec<FoundFrame> {
    const OPEN: &str = "<g><title>";
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = svg[from..].find(OPEN) {
        let start = from + i + OPEN.len();
        from = start;
        let Some(len) = svg[start..].find("</title>") else {
            break;
        };
        let end = start + len;
        let rest = &svg[end..];
        let rect = match (rest.find("<rect "), rest.find("/>")) {
            (Some(a), Some(b)) if a < b => &rest[a..b],
            _ => continue,
        };
        if let (Some(y), Some(x)) = (attr(rect, "y"), attr(rect, "fg:x")) {
            if let (Ok(y), Ok(x)) = (y.parse(), x.parse()) {
                found.push(FoundFrame {
                    text: start..end,
                    y,
                    x,
                });
            }
        }
        from = end;
    }
    found
}

/// The value of attribute `name` in a tag's text.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    let len = tag[i..].find('"')?;
    Some(&tag[i..i + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(before: u64, after: u64) -> Pair {
        Pair { before, after }
    }

    fn stacks() -> Vec<(String, Pair)> {
        vec![
            ("main;f".to_string(), p(1_000, 2_000)),
            ("main".to_string(), p(0, 100)),
            ("main;g".to_string(), p(500, 500)),
            ("main;h".to_string(), p(300, 0)),
            ("main;g;k".to_string(), p(10, 40)),
        ]
    }

    #[test]
    fn frames_land_where_inferno_draws_them() {
        let mut s = stacks();
        s.sort();
        let f = layout(&s);
        assert_eq!(f[&(0, 0)], ("all".to_string(), p(1_810, 2_640)));
        assert_eq!(f[&(1, 0)], ("main".to_string(), p(1_810, 2_640)));
        assert_eq!(f[&(2, 100)], ("f".to_string(), p(1_000, 2_000)));
        assert_eq!(f[&(2, 2_100)], ("g".to_string(), p(510, 540)));
        assert_eq!(f[&(3, 2_600)], ("k".to_string(), p(10, 40)));
        // h has no NEW bytes: not drawn.
        assert_eq!(f.len(), 5);
    }

    #[test]
    fn hover_texts_give_before_after_and_change() {
        assert_eq!(
            title("f", p(1_000, 2_000)),
            "f (1,000 → 2,000 bytes, +1,000 bytes, +100.0%)"
        );
        assert_eq!(title("g", p(500, 500)), "g (500 → 500 bytes, +0 bytes, 0%)");
        assert_eq!(title("n", p(0, 7)), "n (0 → 7 bytes, +7 bytes, new)");
        assert_eq!(
            title("s", p(40, 10)),
            "s (40 → 10 bytes, -30 bytes, -75.0%)"
        );
    }

    #[test]
    fn every_drawn_frame_gets_its_before_and_after() {
        for inverted in [false, true] {
            let look = Look {
                title: "diff",
                subtitle: None,
                inverted,
            };
            let svg = render(stacks(), &look).expect("svg");
            for t in [
                "all (1,810 → 2,640 bytes, +830 bytes, +45.9%)",
                "main (1,810 → 2,640 bytes, +830 bytes, +45.9%)",
                "f (1,000 → 2,000 bytes, +1,000 bytes, +100.0%)",
                "g (510 → 540 bytes, +30 bytes, +5.9%)",
                "k (10 → 40 bytes, +30 bytes, +300.0%)",
            ] {
                assert!(
                    svg.contains(&format!("<title>{t}</title>")),
                    "{t} (inverted: {inverted}) in {svg}"
                );
            }
            // Every frame was retitled: none keeps inferno's own text.
            assert_eq!(svg.matches("<title>").count(), 5, "{svg}");
            assert!(!svg.contains("%;"), "{svg}");
            // Grown frames are red, others not.
            assert!(svg.contains("fill=\"rgb(255,"), "{svg}");
        }
        let look = Look {
            title: "diff",
            subtitle: None,
            inverted: false,
        };
        assert!(render(vec![("gone".to_string(), p(5, 0))], &look).is_ok());
        assert!(render(Vec::new(), &look).is_ok());
    }
}
