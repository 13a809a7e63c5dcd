//! The interactive terminal UI of a call tree (`memtrace tree` on a terminal): rows of bytes,
//! share, allocations and location, folded and unfolded with the keys, a search, a filter of
//! Python's import machinery, and a panel on the selected node.
//!
//! - [`display`]: the tree shown (all frames, or without the import machinery)
//! - [`state`]: expanded nodes, rows, selection, search; what each key does
//! - [`keys`]: terminal keys to actions
//! - [`input`]: waiting for keys, and noticing a terminal that hung up
//! - [`render`], [`panel`]: drawing a frame
//! - [`source`]: source lines for the panel
//! - [`terminal`]: raw mode and the alternate screen, restored on exit and on a panic
//! - [`signals`]: termination signals end the UI as q does

pub mod display;
pub mod input;
pub mod keys;
pub mod live;
pub mod panel;
pub mod render;
pub mod signals;
pub mod source;
pub mod state;
pub mod terminal;

use input::Wait;
use memtrace_reporter::report::calltree::CallTree;
use memtrace_reporter::report::views::thread_display;
use ratatui::crossterm::event::{self, Event};
use source::Sources;
use state::State;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// How often a quiet UI looks for a termination signal.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

/// What the UI says about the tree it shows.
#[derive(Clone, Debug, Default)]
pub struct TuiInfo {
    /// The view's title as the text tree prints it (such as `Memory live at the peak (…): 10.7 MiB
    /// …`); empty: the title bar says the view and the peak instead.
    pub title: String,
    /// The capture file: shown in the title; its directory is searched for relative source files.
    pub capture: PathBuf,
    /// The traced command line.
    pub command: String,
    /// The view the tree is of: "peak", "leaks", "temporary" or "all".
    pub view: String,
    /// The bytes shares are relative to (the peak, for the peak view); 0 shows no shares.
    pub peak_bytes: u64,
    /// Thread serial → display name, such as `main (tid 1234)`.
    pub threads: BTreeMap<u32, String>,
}

impl TuiInfo {
    /// Display names of threads given as (serial, tid, name): `name (tid N)`, or `tid N` for a
    /// thread never named. From an analysis:
    /// `thread_names(a.threads.iter().map(|t| (t.serial, t.tid, t.name.as_deref())))`.
    pub fn thread_names<'a>(
        threads: impl IntoIterator<Item = (u32, u32, Option<&'a str>)>,
    ) -> BTreeMap<u32, String> {
        threads
            .into_iter()
            .map(|(serial, tid, name)| (serial, thread_display(tid, name)))
            .collect()
    }

    fn thread_name(&self, serial: u32) -> String {
        match self.threads.get(&serial) {
            Some(name) => name.clone(),
            None => format!("thread #{serial}"),
        }
    }

    /// What shares are of, after "12.5% of".
    fn total_name(&self) -> String {
        match self.view.as_str() {
            "peak" => "the peak".to_string(),
            "leaks" => "the leaked bytes".to_string(),
            "temporary" => "the temporary bytes".to_string(),
            "all" => "all allocated bytes".to_string(),
            "" => "the total".to_string(),
            other => format!("the {other} total"),
        }
    }

    /// What the root row stands for.
    fn root_label(&self) -> String {
        match self.view.as_str() {
            "peak" => "all memory live at the peak".to_string(),
            "leaks" => "all memory leaked (live at exit)".to_string(),
            "temporary" => "all temporary allocations".to_string(),
            "all" => "every allocation of the run".to_string(),
            "" => "all".to_string(),
            other => format!("all ({other})"),
        }
    }
}

/// The UI's state and what it draws from.
pub struct App {
    pub state: State,
    pub info: TuiInfo,
    pub sources: Sources,
}

impl App {
    pub fn new(tree: CallTree, info: TuiInfo) -> App {
        let bases = info
            .capture
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| vec![p.to_path_buf()])
            .unwrap_or_default();
        App {
            state: State::new(tree),
            info,
            sources: Sources::new(bases),
        }
    }
}

/// Shows `tree` until the user quits (q, Esc or Ctrl-C). Needs stdout to be a terminal.
pub fn run(tree: CallTree, info: TuiInfo) -> std::io::Result<()> {
    if !std::io::stdout().is_terminal() {
        return Err(std::io::Error::other("stdout is not a terminal"));
    }
    let mut app = App::new(tree, info);
    let signals = signals::QuitSignals::register()?;
    let input = input::Input::open();
    let mut session = terminal::Session::start()?;
    let mut redraw = true;
    while !app.state.quit() && !signals.raised() {
        if redraw {
            session
                .terminal()
                .draw(|frame| render::draw(frame, &mut app))?;
        }
        redraw = false;
        if signals.take_stop() {
            session.suspend()?;
            signals.take_stop();
            redraw = true;
            continue;
        }
        match input.wait(SIGNAL_CHECK)? {
            Wait::Quiet => continue,
            // Nobody to show anything to, nor a terminal to restore.
            Wait::HungUp => {
                let _ = session.finish();
                return Ok(());
            }
            Wait::Ready => {}
        }
        redraw = true;
        // A resize or anything else needs no more than the draw, which takes the new size.
        if let Event::Key(key) = event::read()? {
            if keys::is_suspend(key) {
                session.suspend()?;
                signals.take_stop();
                continue;
            }
            if let Some(action) = keys::action(key, app.state.prompt().is_some()) {
                app.state.apply(action);
            }
        }
    }
    session.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_named_with_their_tid() {
        let names = TuiInfo::thread_names([
            (1, 100, Some("python3")),
            (2, 101, None),
            (3, 102, Some("")),
        ]);
        assert_eq!(names[&1], "python3 (tid 100)");
        assert_eq!(names[&2], "tid 101");
        assert_eq!(names[&3], "tid 102");
        let info = TuiInfo {
            threads: names,
            ..TuiInfo::default()
        };
        assert_eq!(info.thread_name(1), "python3 (tid 100)");
        assert_eq!(info.thread_name(9), "thread #9");
    }
}
