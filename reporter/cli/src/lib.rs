//! The `memtrace` command on top of the reporter library: the command line and the terminal.
//!
//! - [`color`]: `--color` for the text reports
//! - [`commands`]: the report commands (stats, tree, summary, diff, flamegraph, export)
//! - [`run`]: `memtrace run`, a program under the tracker
//! - [`inherited`]: what memtrace was started with, handed on to the program unchanged
//! - [`tui`]: the interactive terminal UI of a call tree
//! - [`progress`]: a progress bar on stderr for the library's progress callback
//! - [`view_args`]: the options every report shares
//! - [`usage`]: usage errors as one line with an example

pub mod attach;
pub mod by_type_view;
pub mod color;
pub mod commands;
pub mod inherited;
pub mod progress;
pub mod run;
pub mod tui;
pub mod usage;
pub mod view_args;
