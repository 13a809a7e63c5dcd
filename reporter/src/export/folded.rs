//! Collapsed stacks: one line per stack, `outer;...;inner BYTES`, for flamegraph.pl and inferno.
//! The value is the bytes live at the view's moment; stacks with none are left out.

use super::{frame_name, Sites};
use crate::flamegraph::fold::clean;
use crate::report::path_tree::NodeId;
use std::io::{self, Write};

/// The root frame of a stack with no frame known.
pub const UNKNOWN_STACK: &str = "<unknown>";

pub fn write(sites: &Sites, out: &mut dyn Write) -> io::Result<()> {
    // Each node's cleaned name once, however many stacks go through it.
    let mut names: Vec<Option<String>> = vec![None; sites.paths.len()];
    let mut lines: Vec<(String, u64)> = sites
        .list
        .iter()
        .filter(|s| s.live.bytes > 0)
        .map(|s| (stack_line(sites, s.node, &mut names), s.live.bytes))
        .collect();
    // Same stacks of different ids (one location reached through different return addresses)
    // become one line.
    lines.sort();
    let mut merged: Vec<(String, u64)> = Vec::with_capacity(lines.len());
    for (stack, bytes) in lines {
        match merged.last_mut() {
            Some((last, total)) if *last == stack => *total += bytes,
            _ => merged.push((stack, bytes)),
        }
    }
    for (stack, bytes) in merged {
        writeln!(out, "{stack} {bytes}")?;
    }
    Ok(())
}

fn stack_line(sites: &Sites, node: NodeId, names: &mut [Option<String>]) -> String {
    let path = sites.paths.node_path(node);
    if path.is_empty() {
        return UNKNOWN_STACK.to_string();
    }
    let mut line = String::new();
    for (i, n) in path.into_iter().enumerate() {
        if i > 0 {
            line.push(';');
        }
        let name = names[n].get_or_insert_with(|| {
            sites
                .paths
                .location(n)
                .map(|l| clean(frame_name(l)))
                .unwrap_or_default()
        });
        line.push_str(name);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::totals::Sum;
    use crate::export::Site;
    use crate::report::locations::test_location as loc;

    fn site(frames: &[(&str, u64)], live: u64) -> Site {
        Site {
            frames: frames.iter().map(|&(f, l)| loc(f, l)).collect(),
            allocated: Sum {
                count: 1,
                bytes: live + 10,
            },
            live: Sum {
                count: 1,
                bytes: live,
            },
        }
    }

    #[test]
    fn one_line_per_stack_outermost_first() {
        let sites = [
            site(&[("<module>", 9), ("g", 5), ("f", 2)], 100),
            site(&[("<module>", 9), ("h;x", 7)], 30),
            site(&[("<module>", 9), ("g", 5), ("f", 2)], 5),
            site(&[("<module>", 3)], 0),
            site(&[], 4),
        ];
        let mut out = Vec::new();
        write(&sites.into_iter().collect(), &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "<module> at a.py:9;g at a.py:5;f at a.py:2 105\n\
             <module> at a.py:9;h:x at a.py:7 30\n\
             <unknown> 4\n"
        );
    }
}
