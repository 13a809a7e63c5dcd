//! Drawing one frame: a title line, the column header, the tree rows, the panel on the selected
//! node (right on wide terminals, below on narrow ones, left out on very short ones) and a status
//! line (help, a message or the search prompt).

use super::panel::{self, share};
use super::App;
use memtrace_reporter::report::calltree::{Node, NodeId};
use memtrace_reporter::report::human::{count, size};
use memtrace_reporter::report::visible::{escape, is_unsafe};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

/// From this width the panel sits right of the tree.
const WIDE: u16 = 120;
/// From this height the panel fits below the tree.
const TALL: u16 = 16;
/// The panel's height below the tree: six lines and the borders.
const PANEL_HEIGHT: u16 = 8;
/// Bytes, share and allocation columns, with their spaces.
const NUMBERS: usize = 10 + 1 + 6 + 1 + 7 + 2;

const HELP: &str = "↑↓ move  ←→ ⏎ fold  e all  / search  n next  i imports  q quit";

pub fn draw(frame: &mut Frame, app: &mut App) {
    let area = frame.area();
    draw_in(frame, app, area);
}

/// Draws the view in `area` of the frame (`memtrace live` puts its own lines above it).
pub fn draw_in(frame: &mut Frame, app: &mut App, area: Rect) {
    let [title, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let (tree, panel) = split(body);
    let [header, rows] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(tree);
    app.state.set_height(usize::from(rows.height));

    frame.render_widget(Paragraph::new(title_line(app)).style(reversed()), title);
    frame.render_widget(
        Paragraph::new(format!(
            "{:>10} {:>6} {:>7}  location",
            "bytes", "share", "allocs"
        ))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        header,
    );
    frame.render_widget(Paragraph::new(row_lines(app, rows)), rows);
    if let Some(panel) = panel {
        let node = &app.state.tree().nodes[app.state.selected()];
        let text = panel::lines(node, &app.info, &mut app.sources);
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(" selected ")),
            panel,
        );
    }
    draw_status(frame, app, status);
    // Whatever a name still carries (the escapes above cover what the capture names), no
    // control character reaches the terminal.
    for cell in frame.buffer_mut().content.iter_mut() {
        if cell.symbol().chars().any(is_unsafe) {
            cell.set_symbol("\u{fffd}");
        }
    }
}

/// The tree's area and the panel's, if there is room for one.
fn split(body: Rect) -> (Rect, Option<Rect>) {
    if body.width >= WIDE {
        let panel_width = (body.width * 2 / 5).max(40);
        let [tree, panel] =
            Layout::horizontal([Constraint::Min(0), Constraint::Length(panel_width)]).areas(body);
        (tree, Some(panel))
    } else if body.height + 2 >= TALL {
        let [tree, panel] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(PANEL_HEIGHT)]).areas(body);
        (tree, Some(panel))
    } else {
        (body, None)
    }
}

fn title_line(app: &App) -> String {
    let info = &app.info;
    // The peak as the capture says, else the tree's total.
    let total = match info.peak_bytes {
        0 => app.state.tree().root().bytes,
        peak => peak,
    };
    let head = if info.title.is_empty() {
        format!("memtrace {} {}", info.view, size(total))
    } else {
        info.title.clone()
    };
    let mut parts = vec![head];
    if !info.command.is_empty() {
        parts.push(info.command.clone());
    }
    if !info.capture.as_os_str().is_empty() {
        parts.push(info.capture.display().to_string());
    }
    escape(&format!(" {}", parts.join(" · "))).into_owned()
}

fn row_lines(app: &App, area: Rect) -> Vec<Line<'static>> {
    let state = &app.state;
    let tree = state.tree();
    let width = usize::from(area.width);
    // Deep stacks: indentation stops growing at half of the room for names.
    let max_indent = width.saturating_sub(NUMBERS) / 2;
    let first = state.offset();
    let last = (first + usize::from(area.height)).min(state.rows().len());
    (first..last)
        .map(|row| {
            let id = state.rows()[row];
            let node = &tree.nodes[id];
            let mut line = row_line(app, id, node, &indentation(node.depth, max_indent));
            if row == state.cursor() {
                line = line.style(reversed());
            } else if state.is_match(id) {
                line = line.style(Style::new().fg(Color::Yellow));
            }
            line
        })
        .collect()
}

/// Two columns a level; past `max`, the depth as a number so that deep rows still tell apart.
fn indentation(depth: usize, max: usize) -> String {
    if depth * 2 <= max {
        return " ".repeat(depth * 2);
    }
    let tag = format!("{depth}› ");
    format!("{tag:>max$}")
}

fn row_line(app: &App, id: NodeId, node: &Node, indent: &str) -> Line<'static> {
    let state = &app.state;
    let marker = if node.children.is_empty() {
        "  "
    } else if state.is_expanded(id) {
        "▾ "
    } else {
        "▸ "
    };
    let numbers = format!(
        "{:>10} {:>6} {:>7}  {indent}{marker}",
        size(node.bytes),
        share(node.bytes, app.info.peak_bytes),
        compact(node.allocations),
    );
    let mut spans = vec![Span::raw(numbers)];
    let name_style = if state.is_match(id) {
        Style::new().add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    match &node.location {
        None => spans.push(Span::styled(app.info.root_label(), name_style)),
        Some(loc) => {
            let name = loc.function.as_deref().unwrap_or(&loc.label);
            spans.push(Span::styled(escape(name).into_owned(), name_style));
            if loc.function.is_some() {
                if let Some(file) = &loc.file {
                    let file = escape(short_file(file));
                    let at = match loc.line {
                        Some(l) => format!("  {file}:{l}"),
                        None => format!("  {file}"),
                    };
                    spans.push(Span::styled(at, Style::new().add_modifier(Modifier::DIM)));
                }
            }
        }
    }
    Line::from(spans)
}

/// The file's name without its directories (the panel shows the whole path).
fn short_file(file: &str) -> &str {
    if file.starts_with('<') {
        return file;
    }
    file.rsplit('/').next().unwrap_or(file)
}

/// Counts in at most 7 columns: `99,999`, then `123.4k`, `18.0M`, `1.2G`.
fn compact(n: u64) -> String {
    if n < 100_000 {
        return count(n);
    }
    let units = [(1e9, "G"), (1e6, "M"), (1e3, "k")];
    let x = n as f64;
    for (scale, unit) in units {
        if x >= scale {
            return format!("{:.1}{unit}", x / scale);
        }
    }
    count(n)
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let state = &app.state;
    if let Some(text) = state.prompt() {
        let line = format!("/{text}");
        let x = area.x + u16::try_from(line.chars().count()).unwrap_or(u16::MAX);
        frame.render_widget(Paragraph::new(line), area);
        frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
        return;
    }
    // The filter and the position always show; the help or message takes the rest.
    let filter = if state.hides_imports() {
        "imports hidden · "
    } else {
        ""
    };
    let right = format!("{filter}{}/{} ", state.cursor() + 1, state.rows().len());
    let width = usize::from(area.width);
    let room = width.saturating_sub(right.chars().count() + 1);
    let mut left: String = state.message().unwrap_or(HELP).chars().take(room).collect();
    let pad = width.saturating_sub(left.chars().count() + right.chars().count());
    left.extend(std::iter::repeat_n(' ', pad));
    left.push_str(&right);
    let line = left;
    frame.render_widget(
        Paragraph::new(line).style(Style::new().add_modifier(Modifier::DIM)),
        area,
    );
}

fn reversed() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::display::tests::tree_with_imports;
    use crate::tui::state::Action;
    use crate::tui::TuiInfo;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn info() -> TuiInfo {
        TuiInfo {
            title: String::new(),
            capture: "/tmp/app.bin".into(),
            command: "python app.py".to_string(),
            view: "peak".to_string(),
            peak_bytes: 255,
            threads: [
                (1, "main (tid 100)".to_string()),
                (2, "worker (tid 101)".to_string()),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn screen(terminal: &mut Terminal<TestBackend>, app: &mut App) -> Vec<String> {
        terminal
            .draw(|f| draw(f, app))
            .expect("drawing on a test backend");
        let buffer = terminal.backend().buffer();
        (0..buffer.area.height)
            .map(|y| {
                (0..buffer.area.width)
                    .map(|x| buffer[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    fn terminal(width: u16, height: u16) -> Terminal<TestBackend> {
        Terminal::new(TestBackend::new(width, height)).expect("a test terminal")
    }

    #[test]
    fn names_with_control_characters_are_shown_escaped() {
        use crate::tui::display::tests::loc;
        use memtrace_reporter::report::calltree::{CallTree, StackAllocations};
        let evil = "\x1b]0;PWNED\x07\u{202e}";
        let frames = [loc(evil, &format!("{evil}.py"), 3)];
        let tree = CallTree::build([StackAllocations {
            frames: &frames,
            bytes: 100,
            allocations: 1,
            thread: 1,
        }]);
        let mut info = info();
        info.command = format!("python {evil}");
        info.threads.insert(1, format!("{evil} (tid 100)"));
        let mut app = App::new(tree, info);
        app.state.apply(Action::Down);
        let lines = screen(&mut terminal(160, 24), &mut app);
        let all = lines.join("\n");
        assert!(!all.chars().any(is_unsafe), "{all}");
        let shown = "\\x1b]0;PWNED\\x07\\u{202e}";
        assert!(
            lines[0].contains(&format!("python {shown}")),
            "{}",
            lines[0]
        );
        assert!(
            lines[3].contains(&format!("{shown}  {shown}.py:3")),
            "{}",
            lines[3]
        );
        assert!(all.contains(&format!("thread: {shown} (tid 100)")), "{all}");
    }

    #[test]
    fn the_panel_explains_unknown() {
        use memtrace_reporter::report::calltree::{CallTree, StackAllocations};
        use memtrace_reporter::report::locations::Location;
        let frames = [Location::unknown()];
        let tree = CallTree::build([StackAllocations {
            frames: &frames,
            bytes: 100,
            allocations: 1,
            thread: 1,
        }]);
        let mut app = App::new(tree, info());
        app.state.apply(Action::Down);
        let all = screen(&mut terminal(160, 24), &mut app).join("\n");
        assert!(
            all.contains("│<unknown>: allocations recorded without a call site (in a     │"),
            "{all}"
        );
        assert!(
            all.contains("│`memtrace run --native` records their stacks."),
            "{all}"
        );
    }

    #[test]
    fn opens_on_80_by_24_with_the_biggest_path_and_the_panel_below() {
        let mut app = App::new(tree_with_imports(), info());
        let lines = screen(&mut terminal(80, 24), &mut app);
        assert_eq!(lines.len(), 24);
        assert_eq!(
            lines[0],
            " memtrace peak 255 B · python app.py · /tmp/app.bin"
        );
        assert_eq!(lines[1], "     bytes  share  allocs  location");
        let rows = [
            "     255 B 100.0%       5  ▾ all memory live at the peak",
            "     255 B 100.0%       5    ▾ <module>  app.py:1",
            "     105 B  41.2%       2      ▾ _find_and_load  <frozen importlib._bootstrap>:1",
            "     100 B  39.2%       1        ▾ _load_unlocked  <frozen importlib._bootstrap>",
            "     100 B  39.2%       1          ▾ <module>  lib.py:1",
            "     100 B  39.2%       1              table  lib.py:3",
            "      90 B  35.3%       1        main  app.py:5",
            "      60 B  23.5%       2      ▸ _handle_fromlist  <frozen importlib._bootstrap>",
        ];
        assert_eq!(lines[2..10], rows);
        assert!(lines[10..15].iter().all(|l| l.is_empty()), "{lines:#?}");
        // The panel: the selected leaf.
        assert_eq!(
            lines[15],
            "┌ selected ────────────────────────────────────────────────────────────────────┐"
        );
        assert_eq!(lines[16].trim_end_matches(['│', ' ']), "│table");
        assert!(lines[17].starts_with("│at lib.py:3"), "{}", lines[17]);
        assert!(
            lines[18].starts_with("│100 B (100 B), 39.2% of the peak, 1 allocation"),
            "{}",
            lines[18]
        );
        assert!(
            lines[19].starts_with("│own: 100 B in 1 allocation; depth 5"),
            "{}",
            lines[19]
        );
        assert!(
            lines[20].starts_with("│thread: main (tid 100)"),
            "{}",
            lines[20]
        );
        assert!(lines[23].starts_with("↑↓ move"), "{}", lines[23]);
        assert!(lines[23].ends_with("6/8"), "{}", lines[23]);
    }

    #[test]
    fn the_selected_row_is_reversed_and_matches_are_yellow() {
        let mut app = App::new(tree_with_imports(), info());
        let mut term = terminal(80, 24);
        screen(&mut term, &mut app);
        let buffer = term.backend().buffer();
        // Row 7 on screen (the 6th tree row) is the selection.
        assert!(buffer[(0, 7)].modifier.contains(Modifier::REVERSED));
        assert!(!buffer[(0, 6)].modifier.contains(Modifier::REVERSED));
        for c in "/main".chars() {
            let action = if c == '/' {
                Action::Search
            } else {
                Action::Input(c)
            };
            app.state.apply(action);
        }
        let lines = screen(&mut term, &mut app);
        assert_eq!(lines[23], "/main");
        app.state.apply(Action::Submit);
        let lines = screen(&mut term, &mut app);
        assert!(lines[23].starts_with("match 1 of 1"), "{}", lines[23]);
        assert!(lines[16].starts_with("│main"), "{}", lines[16]);
        assert!(lines[8].ends_with("main  app.py:5"), "{}", lines[8]);
        assert!(term.backend().buffer()[(0, 8)]
            .modifier
            .contains(Modifier::REVERSED));
    }

    #[test]
    fn the_panel_shows_threads_by_name_and_the_source_line() {
        let dir = std::env::temp_dir().join(format!("memtrace-tui-render-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("lib.py"), "import os\n\n    TABLE = [0] * 100\n");
        let mut info = info();
        info.capture = dir.join("app.bin");
        let mut app = App::new(tree_with_imports(), info);
        // Up to lib.py's <module>, run by both threads once import frames are hidden.
        app.state.apply(Action::ToggleImports);
        let lines = screen(&mut terminal(80, 24), &mut app);
        assert!(
            lines[23].starts_with("import machinery hidden (3 frames)"),
            "{}",
            lines[23]
        );
        assert!(lines[23].ends_with("imports hidden · 4/5"), "{}", lines[23]);
        // A title from the caller stands first.
        app.info.title = "Memory live at the peak: 255 B".to_string();
        let lines = screen(&mut terminal(80, 24), &mut app);
        let head = format!(
            " Memory live at the peak: 255 B · python app.py · {}",
            std::env::temp_dir().display()
        );
        assert!(
            lines[0].starts_with(&head.chars().take(78).collect::<String>()),
            "{}",
            lines[0]
        );
        assert!(lines[16].starts_with("│table"), "{}", lines[16]);
        assert!(
            lines[21].starts_with("│3 │ TABLE = [0] * 100"),
            "{}",
            lines[21]
        );
        app.state.apply(Action::Up);
        let lines = screen(&mut terminal(80, 24), &mut app);
        assert!(lines[16].starts_with("│<module>"), "{}", lines[16]);
        assert!(
            lines[20].starts_with("│threads: main (tid 100), worker (tid 101)"),
            "{}",
            lines[20]
        );
        assert!(lines[21].starts_with("│1 │ import os"), "{}", lines[21]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn survives_resizing_and_puts_the_panel_right_when_wide() {
        let mut app = App::new(tree_with_imports(), info());
        let mut term = terminal(80, 24);
        screen(&mut term, &mut app);
        // Wide: the panel on the right, rows keep their place.
        term.backend_mut().resize(140, 30);
        let lines = screen(&mut term, &mut app);
        assert_eq!(lines.len(), 30);
        assert!(lines[7].contains("table  lib.py:3"), "{}", lines[7]);
        assert!(lines[1].contains("┌ selected"), "{}", lines[1]);
        let panel_at = lines[2].find("│table ").unwrap_or(0);
        assert!(panel_at > 70, "{}", lines[2]);
        assert!(
            lines[4].contains("│100 B (100 B), 39.2% of the peak"),
            "{}",
            lines[4]
        );
        // Tiny: no panel, the selection scrolled into the few rows there are.
        term.backend_mut().resize(40, 6);
        let lines = screen(&mut term, &mut app);
        assert_eq!(lines.len(), 6);
        assert!(lines.iter().all(|l| !l.contains("selected")), "{lines:#?}");
        assert!(
            lines[1..5].iter().any(|l| l.contains("table")),
            "{lines:#?}"
        );
        // Back to 80×24: as at first.
        term.backend_mut().resize(80, 24);
        let lines = screen(&mut term, &mut app);
        assert!(lines[7].ends_with("table  lib.py:3"), "{}", lines[7]);
        assert!(lines[16].starts_with("│table"), "{}", lines[16]);
    }

    #[test]
    fn deep_rows_stop_indenting() {
        use crate::tui::display::tests::loc;
        use memtrace_reporter::report::calltree::{CallTree, StackAllocations};
        let frames: Vec<_> = (0..60)
            .map(|i| loc(&format!("f{i}"), "deep.py", i))
            .collect();
        let tree = CallTree::build([StackAllocations {
            frames: &frames,
            bytes: 1 << 20,
            allocations: 250_000,
            thread: 1,
        }]);
        let mut app = App::new(tree, info());
        let lines = screen(&mut terminal(80, 24), &mut app);
        // The leaf f59 is selected and in view, its name still on screen.
        let leaf = lines
            .iter()
            .find(|l| l.contains("f59"))
            .cloned()
            .unwrap_or_default();
        assert!(leaf.starts_with("   1.0 MiB"), "{leaf}");
        assert!(leaf.contains(" 250.0k "), "{leaf}");
        assert!(leaf.contains("60›   f59  deep.py:59"), "{leaf}");
        let parent = lines
            .iter()
            .find(|l| l.contains("f58"))
            .cloned()
            .unwrap_or_default();
        assert!(parent.contains("59› ▾ f58"), "{parent}");
        // Both tags end where the capped indentation does.
        assert_eq!(leaf.find('›'), parent.find('›'));
        assert_eq!(indentation(3, 26), "      ");
        assert_eq!(indentation(13, 26), " ".repeat(26));
        assert_eq!(indentation(14, 26), format!("{:>26}", "14› "));
    }

    #[test]
    fn any_size_draws_without_panicking() {
        let mut app = App::new(tree_with_imports(), info());
        let mut term = terminal(80, 24);
        for (w, h) in [
            (1, 1),
            (2, 3),
            (10, 2),
            (30, 4),
            (200, 5),
            (20, 60),
            (80, 24),
        ] {
            term.backend_mut().resize(w, h);
            let lines = screen(&mut term, &mut app);
            assert_eq!(lines.len(), usize::from(h));
            app.state.apply(Action::Search);
            app.state.apply(Action::Input('t'));
            screen(&mut term, &mut app);
            app.state.apply(Action::Submit);
            app.state.apply(Action::PageDown);
        }
    }

    #[test]
    fn an_empty_tree_shows_its_root() {
        use memtrace_reporter::report::calltree::CallTree;
        let mut app = App::new(CallTree::new(), TuiInfo::default());
        let lines = screen(&mut terminal(80, 24), &mut app);
        assert_eq!(lines[2], "       0 B      -       0    all");
        assert!(lines[16].starts_with("│all "), "{}", lines[16]);
        assert!(
            lines[17].starts_with("│0 B (0 B), - of the total, 0 allocations"),
            "{}",
            lines[17]
        );
        assert!(lines[23].ends_with("1/1"), "{}", lines[23]);
    }

    #[test]
    fn counts_fit_their_column() {
        assert_eq!(compact(99_999), "99,999");
        assert_eq!(compact(100_000), "100.0k");
        assert_eq!(compact(18_000_000), "18.0M");
        assert_eq!(compact(1_234_567_890), "1.2G");
        assert_eq!(share(1, 0), "-");
        assert_eq!(share(1, 3), "33.3%");
    }
}
