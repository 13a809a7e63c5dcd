//! The call tree as text: one line per node (bytes, share of the root, allocations, location),
//! the largest children first, cut at a depth and a number of children per node, each line cut
//! at a width.

use super::calltree::{CallTree, NodeId, ROOT};
use super::human::{count, size};
use super::locations::{UNKNOWN, UNKNOWN_NOTE};
use super::paint::{self, paint, Plain, Styled, BOLD};
use super::paths::Paths;
use std::io::{self, Write};

/// How much of the tree to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Levels below the root.
    pub depth: usize,
    /// Children shown per node (the rest are summed up on one line).
    pub biggest: usize,
    /// Characters per line.
    pub width: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            depth: 12,
            biggest: 5,
            width: 140,
        }
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Cuts a line to `width` characters, ending it with `…` when cut.
fn fit(line: String, width: usize) -> String {
    if line.chars().count() <= width {
        return line;
    }
    let mut s: String = line.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

struct Printer<'a, W: Write> {
    tree: &'a CallTree,
    limits: Limits,
    total: u64,
    out: &'a mut W,
    /// An `<unknown>` node was printed: the note follows the tree.
    unknown: bool,
    paths: &'a Paths,
}

impl<W: Styled> Printer<'_, W> {
    /// One node's line: `drawing` (the tree's lines) then `label` (a location, in colour), cut
    /// at the width as a whole.
    fn line(&mut self, bytes: u64, allocations: u64, drawing: &str, label: &str) -> io::Result<()> {
        let figures = format!(
            "{:>10} {:>6.1}% {:>12}  ",
            size(bytes),
            share(bytes, self.total),
            count(allocations)
        );
        let head = format!("{figures}{drawing}");
        let line = fit(format!("{head}{label}"), self.limits.width);
        let Some(label) = line.strip_prefix(&head) else {
            // So narrow that the figures are cut: no colour.
            return writeln!(self.out, "{line}");
        };
        let grade = paint::by_share(bytes, self.total);
        paint(self.out, grade, &figures[..10])?;
        write!(self.out, "{}{drawing}", &figures[10..])?;
        if label.starts_with("… ") || label.starts_with('(') {
            write!(self.out, "{label}")?;
        } else {
            paint::location(self.out, label)?;
        }
        writeln!(self.out)
    }

    /// Prints the children of `id`; `prefix` is the tree drawing of its ancestors.
    fn children(&mut self, id: NodeId, prefix: &str) -> io::Result<()> {
        let node = &self.tree.nodes[id];
        if node.depth >= self.limits.depth {
            return Ok(());
        }
        let shown = node.children.len().min(self.limits.biggest);
        let rest = &node.children[shown..];
        for (i, &c) in node.children[..shown].iter().enumerate() {
            let last = i + 1 == shown && rest.is_empty();
            let child = &self.tree.nodes[c];
            let label = child.location.as_ref().map_or("?".to_string(), |l| {
                self.paths.label(&l.label, l.file.as_deref())
            });
            self.unknown |= label == UNKNOWN;
            let cut = if child.depth >= self.limits.depth && !child.children.is_empty() {
                " …"
            } else {
                ""
            };
            let branch = if last { "└─ " } else { "├─ " };
            self.line(
                child.bytes,
                child.allocations,
                &format!("{prefix}{branch}"),
                &format!("{label}{cut}"),
            )?;
            let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
            self.children(c, &deeper)?;
        }
        if !rest.is_empty() {
            let (bytes, allocations) = rest.iter().fold((0u64, 0u64), |(b, a), &c| {
                let n = &self.tree.nodes[c];
                (b + n.bytes, a + n.allocations)
            });
            let more = if rest.len() == 1 { "other" } else { "others" };
            self.line(
                bytes,
                allocations,
                &format!("{prefix}└─ "),
                &format!("… {} {more}", rest.len()),
            )?;
        }
        Ok(())
    }
}

/// Writes the tree under a header line; shares are of the root's bytes.
pub fn render(tree: &CallTree, limits: Limits, out: &mut impl Write) -> io::Result<()> {
    render_styled(tree, limits, &Paths::full(), &mut Plain(out))
}

/// [`render`], with files shown as `paths` says and colour where `out` shows it: sizes graded
/// by share, locations.
pub fn render_styled(
    tree: &CallTree,
    limits: Limits,
    paths: &Paths,
    out: &mut impl Styled,
) -> io::Result<()> {
    let root = tree.root();
    paint(
        out,
        BOLD,
        fit(
            format!(
                "{:>10} {:>7} {:>12}  LOCATION",
                "BYTES", "SHARE", "ALLOCATIONS"
            ),
            limits.width,
        ),
    )?;
    writeln!(out)?;
    let mut p = Printer {
        tree,
        limits,
        total: root.bytes,
        out,
        unknown: false,
        paths,
    };
    p.line(root.bytes, root.allocations, "", "(all)")?;
    p.children(ROOT, "")?;
    if p.unknown {
        writeln!(p.out, "{UNKNOWN_NOTE}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::calltree::StackAllocations;
    use crate::report::locations::Location;

    fn loc(f: &str) -> Location {
        Location {
            function: Some(f.to_string()),
            file: Some("a.py".to_string()),
            line: Some(1),
            label: format!("{f} at a.py:1"),
        }
    }

    #[test]
    fn cuts_depth_children_and_width() {
        let (m, f, g, h) = (loc("main"), loc("f"), loc("g"), loc("h"));
        let a = [m.clone(), f.clone(), g.clone()];
        let b = [m.clone(), h.clone()];
        let c = [m.clone(), g.clone()];
        let s = |frames, bytes| StackAllocations {
            frames,
            bytes,
            allocations: 1,
            thread: 1,
        };
        let tree = CallTree::build([s(&a[..], 600), s(&b[..], 300), s(&c[..], 100)]);
        let mut out = Vec::new();
        let limits = Limits {
            depth: 2,
            biggest: 2,
            width: 200,
        };
        render(&tree, limits, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(lines[1].ends_with("(all)") && lines[1].contains("1000 B"));
        assert!(lines[2].ends_with("└─ main at a.py:1"), "{text}");
        assert!(lines[3].contains("600 B") && lines[3].contains(" 60.0%"));
        assert!(lines[3].ends_with("   ├─ f at a.py:1 …"), "{text}");
        assert!(lines[4].ends_with("   ├─ h at a.py:1"), "{text}");
        assert!(lines[5].contains("100 B") && lines[5].ends_with("   └─ … 1 other"));
        let mut out = Vec::new();
        let narrow = Limits {
            width: 30,
            ..limits
        };
        render(&tree, narrow, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 30), "{text}");
    }
}
