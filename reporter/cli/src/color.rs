//! `--color auto|always|never` for the text reports (stats, summary, diff, tree --text): colour
//! and emphasis on a terminal, none in a pipe or a file, none when `NO_COLOR` is set (and not
//! empty, as no-color.org says) unless `--color always` asks for it.

use clap::{Args, ValueEnum};
use std::ffi::OsString;
use std::io::IsTerminal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum When {
    /// When stdout is a terminal and NO_COLOR is not set
    Auto,
    Always,
    Never,
}

#[derive(Args, Debug, Clone)]
pub struct ColorArgs {
    /// Colour and emphasis in the text: the peak, sizes by share, file:line locations
    #[arg(long = "color", value_enum, value_name = "WHEN", default_value_t = When::Auto)]
    pub color: When,
}

impl ColorArgs {
    /// Whether this run's stdout gets colour.
    pub fn enabled(&self) -> bool {
        decide(
            self.color,
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR"),
        )
    }
}

/// The choice, from the option, whether stdout is a terminal and `NO_COLOR`.
pub fn decide(when: When, terminal: bool, no_color: Option<OsString>) -> bool {
    match when {
        When::Always => true,
        When::Never => false,
        When::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::{decide, When};

    #[test]
    fn auto_is_a_terminal_without_no_color() {
        assert!(decide(When::Auto, true, None));
        assert!(!decide(When::Auto, false, None));
        assert!(!decide(When::Auto, true, Some("1".into())));
        // An empty NO_COLOR does not count.
        assert!(decide(When::Auto, true, Some("".into())));
        assert!(decide(When::Always, false, Some("1".into())));
        assert!(!decide(When::Never, true, None));
    }
}
