//! The live view (`memtrace live`, `run --live`, `attach --live`): the tree of a capture that is
//! still being written, refreshed as it grows. Above the tree, a line with the state of the run,
//! the live heap now and the peak so far, and a sparkline of live memory over time. The tree keys
//! are those of `memtrace tree`; `p` switches between what is live now and what was live at the
//! peak so far, `t` steps through the threads (all, then each one).
//!
//! The reading is the library's ([`Live`]): each refresh adds to its sums only what was written
//! since.

use super::input::Wait;
use super::{keys, render, signals, terminal, App, TuiInfo};
use memtrace_reporter::analysis::live::{Live, Moment};
use memtrace_reporter::report::human::{seconds, size};
use memtrace_reporter::report::visible::escape;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Paragraph, Sparkline};
use ratatui::Frame;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often the capture is read again: the view refreshes at least twice a second.
pub const REFRESH: Duration = Duration::from_millis(400);

/// Lines above the tree: the state line and the sparkline.
const HEAD: u16 = 4;

/// What the view says about the run besides the capture's contents.
pub struct LiveSetup {
    /// The traced command line.
    pub command: String,
    /// A note for the state line, such as where the program's output goes.
    pub note: Option<String>,
    /// Asked at each refresh until it answers, with whether the capture is finished (its
    /// trailer written): `Some(how)` once the program has ended (for example "exited with
    /// status 3"), when the caller can tell more than the trailer does.
    pub ended: Box<dyn FnMut(bool) -> Option<String>>,
    /// A hangup (the terminal closed) ends the view as a quit does, so that the caller's end
    /// runs (`attach --live` detaches); else it ends memtrace at once.
    pub quit_on_hangup: bool,
}

/// The live view's own state.
struct Follow {
    live: Live,
    moment: Moment,
    /// Index of the thread shown (None: all).
    thread: Option<u32>,
    /// How the program ended, once it has.
    ended: Option<String>,
    /// The end shown is the capture's own words only ("the program ended"): the caller is
    /// still asked, since the trailer is written a moment before the process ends.
    ended_by_trailer: bool,
    /// Refreshes since the end was seen (a last read after it takes what came last).
    after_end: u32,
    /// The last error reading the capture.
    error: Option<String>,
    /// The last read left more to read: the next one comes at once.
    behind: bool,
}

impl Follow {
    fn thread_name(&self) -> String {
        match self.thread {
            None => "all".to_string(),
            Some(t) => self
                .live
                .analysis
                .threads
                .get(t as usize)
                .map(|s| memtrace_reporter::report::views::thread_display(s.tid, s.name.as_deref()))
                .unwrap_or_else(|| format!("#{t}")),
        }
    }

    fn info(&self, command: &str) -> TuiInfo {
        let a = &self.live.analysis;
        TuiInfo {
            title: String::new(),
            capture: self.live.follower().path().to_path_buf(),
            command: command.to_string(),
            view: match self.moment {
                Moment::Now => "live now".to_string(),
                Moment::Peak => "peak so far".to_string(),
            },
            peak_bytes: 0,
            threads: TuiInfo::thread_names(
                a.threads
                    .iter()
                    .map(|t| (t.serial, t.tid, t.name.as_deref())),
            ),
        }
    }
}

/// Shows the live view of `live` until the user quits. Needs stdout to be a terminal.
pub fn run(live: Live, mut setup: LiveSetup) -> std::io::Result<()> {
    if !std::io::stdout().is_terminal() {
        return Err(std::io::Error::other("stdout is not a terminal"));
    }
    if let Some(note) = setup.note.take() {
        setup.command = format!("{} · {note}", setup.command);
    }
    let mut follow = Follow {
        live,
        moment: Moment::Now,
        thread: None,
        ended: None,
        ended_by_trailer: false,
        after_end: 0,
        error: None,
        behind: false,
    };
    refresh(&mut follow, &mut setup);
    let tree = follow.live.tree(follow.moment, follow.thread);
    let mut info = follow.info(&setup.command);
    info.peak_bytes = tree.root().bytes;
    let mut app = App::new(tree, info);
    let hangup: &[libc::c_int] = if setup.quit_on_hangup {
        &[libc::SIGHUP]
    } else {
        &[]
    };
    let quit = signals::QuitSignals::register_also(hangup)?;
    let input = super::input::Input::open();
    let mut session = terminal::Session::start()?;
    let mut next = Instant::now() + REFRESH;
    let mut redraw = true;
    // While catching up, reads follow each other at once, but the tree is built again (its
    // cost grows with the live heap, not with what was read) and drawn at most once a REFRESH.
    let mut last_rebuild = Instant::now();
    let mut stale = false;
    // Until the user moves, each refresh opens on the biggest path, as `memtrace tree` does.
    let mut touched = false;
    while !app.state.quit() && !quit.raised() {
        if redraw {
            session
                .terminal()
                .draw(|frame| draw(frame, &mut app, &follow))?;
        }
        redraw = false;
        let now = Instant::now();
        if now >= next {
            stale |= refresh(&mut follow, &mut setup);
            if stale && (!follow.behind || last_rebuild.elapsed() >= REFRESH) {
                rebuild(&mut app, &mut follow, &setup.command, touched);
                last_rebuild = Instant::now();
                stale = false;
                redraw = true;
            }
            // Catching up: read on at once (keys are still read between reads).
            next = if follow.behind {
                Instant::now()
            } else {
                redraw = true;
                Instant::now() + REFRESH
            };
        }
        if quit.take_stop() {
            session.suspend()?;
            quit.take_stop();
            redraw = true;
            continue;
        }
        match input.wait(next.saturating_duration_since(Instant::now()))? {
            Wait::Quiet => continue,
            Wait::HungUp => {
                let _ = session.finish();
                return Ok(());
            }
            Wait::Ready => {}
        }
        redraw = true;
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        if keys::is_suspend(key) {
            session.suspend()?;
            quit.take_stop();
            continue;
        }
        let plain = !key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('p') if plain && app.state.prompt().is_none() => {
                follow.moment = match follow.moment {
                    Moment::Now => Moment::Peak,
                    Moment::Peak => Moment::Now,
                };
                rebuild(&mut app, &mut follow, &setup.command, touched);
            }
            KeyCode::Char('t') if plain && app.state.prompt().is_none() => {
                let n = follow.live.analysis.threads.len() as u32;
                follow.thread = match follow.thread {
                    None if n > 0 => Some(0),
                    Some(t) if t + 1 < n => Some(t + 1),
                    _ => None,
                };
                rebuild(&mut app, &mut follow, &setup.command, touched);
            }
            _ => {
                if let Some(action) = keys::action(key, app.state.prompt().is_some()) {
                    touched = true;
                    app.state.apply(action);
                }
            }
        }
    }
    session.finish()
}

/// Reads what is new; true when the tree should be built again.
fn refresh(follow: &mut Follow, setup: &mut LiveSetup) -> bool {
    if follow.ended_by_trailer {
        // The caller's words (such as the exit status) replace the trailer's once it has them.
        if let Some(how) = (setup.ended)(true) {
            follow.ended = Some(how);
            follow.ended_by_trailer = false;
            return true;
        }
    }
    if follow.ended.is_some() && !follow.behind {
        // Two more reads after the end (and after catching up): what the program wrote last,
        // and its trailer.
        if follow.after_end >= 2 {
            return false;
        }
        follow.after_end += 1;
    }
    let events = match follow.live.poll() {
        Ok(p) => {
            follow.error = None;
            follow.behind = p.behind;
            p.events + p.new_threads
        }
        Err(e) => {
            follow.error = Some(e);
            0
        }
    };
    if follow.ended.is_none() {
        if let Some(how) = (setup.ended)(follow.live.finished()) {
            follow.ended = Some(how);
        } else if follow.live.finished() {
            // An attached capture also ends at a detach or at the end of --duration, the
            // process going on.
            let attached =
                follow.live.follower().header.options & memtrace_format::options::ATTACHED != 0;
            follow.ended_by_trailer = true;
            follow.ended = Some(
                if attached {
                    "tracking stopped: detached, or the process ended"
                } else {
                    "the program ended"
                }
                .to_string(),
            );
        }
    }
    events > 0 || follow.ended.is_some()
}

/// Builds the tree again, keeping what the user had opened and selected once they have
/// `touched` it (before, it opens on the biggest path).
fn rebuild(app: &mut App, follow: &mut Follow, command: &str, touched: bool) {
    let tree = follow.live.tree(follow.moment, follow.thread);
    let mut info = follow.info(command);
    info.peak_bytes = tree.root().bytes;
    let mut next = App::new(tree, info);
    if touched {
        next.state.carry(&app.state);
    }
    next.sources = std::mem::replace(&mut app.sources, next.sources);
    *app = next;
}

fn draw(frame: &mut Frame, app: &mut App, follow: &Follow) {
    let [head, spark, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(HEAD - 1),
        Constraint::Min(1),
    ])
    .areas(frame.area());
    frame.render_widget(
        Paragraph::new(state_line(follow)).style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );
    // Up to now while the program runs (an idle one makes no point), to its end after.
    let end_s = match follow.ended {
        None => follow.live.running_s(),
        Some(_) => follow.live.elapsed_s(),
    };
    let data = sparkline(&follow.live.series(), end_s, spark.width);
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .style(Style::new().fg(Color::Cyan)),
        spark,
    );
    render::draw_in(frame, app, body);
}

/// `● running 12.3 s · live now 1.2 MiB · peak so far 3.4 MiB at 2.1 s · view: live now (p) ·
/// thread: all (t)`.
fn state_line(follow: &Follow) -> String {
    let a = &follow.live.analysis;
    let peak = follow.live.peak();
    let state = match (&follow.ended, &follow.error) {
        (_, Some(e)) => format!("! {e}"),
        (Some(how), _) => format!("■ ended ({how}) after {}", seconds(follow.live.elapsed_s())),
        (None, _) if follow.behind => format!(
            "● running, catching up: {} read",
            seconds(follow.live.elapsed_s())
        ),
        (None, _) => format!("● running {}", seconds(follow.live.running_s())),
    };
    let peak_at = peak.tick.map_or(0.0, |t| a.clock.seconds(t));
    let view = match follow.moment {
        Moment::Now => "live now",
        Moment::Peak => "peak so far",
    };
    let mut line = format!(
        "{state} · live now {} · peak so far {} at {} · view: {view} (p) · thread: {} (t)",
        size(follow.live.live_bytes()),
        size(peak.bytes),
        seconds(peak_at),
        follow.thread_name()
    );
    if let Some(note) = &follow.live_note() {
        line.push_str(" · ");
        line.push_str(note);
    }
    escape(&line).into_owned()
}

impl Follow {
    /// The warnings' count, when there are some.
    fn live_note(&self) -> Option<String> {
        let n = self.live.analysis.warnings.len();
        (n > 0).then(|| format!("{n} warnings"))
    }
}

/// Live bytes over the run, one column per `width`: each column the highest value in its time
/// span (the last value carried over spans without a point).
pub fn sparkline(points: &[(f64, u64)], end_s: f64, width: u16) -> Vec<u64> {
    let width = usize::from(width).max(1);
    let end = points.last().map_or(end_s, |p| p.0.max(end_s)).max(1e-9);
    let mut cols: Vec<Option<u64>> = vec![None; width];
    for &(t, v) in points {
        let c = ((t.max(0.0) / end) * width as f64) as usize;
        let slot = &mut cols[c.min(width - 1)];
        *slot = Some(slot.map_or(v, |old: u64| old.max(v)));
    }
    let mut last = 0;
    cols.into_iter()
        .map(|c| {
            if let Some(v) = c {
                last = v;
            }
            last
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sparkline_keeps_each_span_highest_value() {
        let points = [(0.0, 5), (0.1, 9), (0.5, 2), (0.9, 7)];
        assert_eq!(sparkline(&points, 1.0, 4), vec![9, 9, 2, 7]);
        assert_eq!(sparkline(&[], 0.0, 3), vec![0, 0, 0]);
    }
}
