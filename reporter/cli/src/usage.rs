//! Usage errors as one line that names what is missing or wrong and shows one correct use.
//!
//! clap's own message puts the missing argument's name on a line of its own and the usage on
//! another; `main` prints one line. This module rebuilds that line from the error's context:
//! what is missing (with its help text), the invalid value (with the values allowed), the
//! unknown option or command (with clap's suggestion), and an example taken from the command's
//! own `Examples:` (the first that uses the option concerned, else the first).

use clap::error::{ContextKind, ContextValue, Error, ErrorKind};
use clap::Command;

/// The one line to print for a usage error of `cli` (the top-level command), without the
/// leading `memtrace: `. `words` are the command-line arguments after the program name.
pub fn message(cli: &Command, err: &Error, words: &[String]) -> String {
    let sub = words
        .first()
        .and_then(|w| cli.get_subcommands().find(|s| s.get_name() == w));
    let what = describe(err, sub);
    let (prefix, example, help) = match sub {
        Some(s) => (
            format!("{}: ", s.get_name()),
            example(s, offending(err).as_deref()),
            format!(
                " (see 'memtrace {} --help' and 'memtrace --help')",
                s.get_name()
            ),
        ),
        None => {
            // An unknown command: the example is the suggested command's, else `run`'s.
            let suggested = strings(err, ContextKind::SuggestedSubcommand)
                .into_iter()
                .next()
                .and_then(|name| cli.find_subcommand(&name).cloned());
            let s = suggested.or_else(|| cli.find_subcommand("run").cloned());
            (
                String::new(),
                s.and_then(|s| example(&s, None)),
                " (see 'memtrace --help')".to_string(),
            )
        }
    };
    match example {
        Some(e) => format!("{prefix}{what}; for example: {e}{help}"),
        None => format!("{prefix}{what}{help}"),
    }
}

/// What is wrong, in words.
fn describe(err: &Error, sub: Option<&Command>) -> String {
    let invalid = strings(err, ContextKind::InvalidArg);
    match err.kind() {
        ErrorKind::MissingRequiredArgument => {
            let named: Vec<String> = invalid
                .iter()
                .map(|n| match sub.and_then(|s| help_of(s, n)) {
                    Some(h) => format!("{} ({h})", bare(n)),
                    None => bare(n),
                })
                .collect();
            format!("missing {}", named.join(" and "))
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let mut line = first_line(err);
            let valid = strings(err, ContextKind::ValidValue);
            if !valid.is_empty() && !line.contains("possible values") {
                line.push_str(&format!(" (possible values: {})", valid.join(", ")));
            }
            line
        }
        ErrorKind::UnknownArgument => {
            let arg = invalid.first().cloned().unwrap_or_default();
            let tip = strings(err, ContextKind::SuggestedArg)
                .into_iter()
                .next()
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            // clap reads `-n -1`'s value as an option: say what it is.
            if is_negative_number(&arg) {
                return format!(
                    "'{arg}' is a negative number: counts, depths, durations and pids are 0 or more"
                );
            }
            let what = if arg.starts_with('-') {
                "unknown option"
            } else {
                "unexpected argument"
            };
            format!("{what} '{arg}'{tip}")
        }
        ErrorKind::InvalidSubcommand => {
            let name = strings(err, ContextKind::InvalidSubcommand)
                .into_iter()
                .next()
                .unwrap_or_default();
            let tip = strings(err, ContextKind::SuggestedSubcommand)
                .into_iter()
                .next()
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            format!("unknown command '{name}'{tip}")
        }
        _ => first_line(err),
    }
}

/// `-1`, `-2.5`: what clap takes for an option where a value was meant.
fn is_negative_number(arg: &str) -> bool {
    arg.strip_prefix('-')
        .is_some_and(|d| d.parse::<f64>().is_ok() && d.starts_with(|c: char| c.is_ascii_digit()))
}

/// clap's first line without its `error: ` and without a trailing colon.
fn first_line(err: &Error) -> String {
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    first.trim_end_matches(':').to_string()
}

/// The strings of one kind of the error's context.
fn strings(err: &Error, kind: ContextKind) -> Vec<String> {
    match err.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::StyledStr(s)) => vec![s.to_string()],
        Some(ContextValue::StyledStrs(v)) => v.iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// `<PROGRAM>...` and `--top <N>` as `PROGRAM` and `--top`.
fn bare(name: &str) -> String {
    let name = name.trim_end_matches("...");
    if name.starts_with('-') {
        name.split_whitespace().next().unwrap_or(name).to_string()
    } else {
        name.trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    }
}

/// The option the error is about (`--thread`), to pick an example that uses it.
fn offending(err: &Error) -> Option<String> {
    let arg = strings(err, ContextKind::InvalidArg).into_iter().next()?;
    let bare = bare(&arg);
    bare.starts_with('-').then_some(bare)
}

/// The ways to write `option` (`--top`) in `sub`: its long and short forms.
fn spellings(sub: &Command, option: &str) -> Vec<String> {
    let arg = sub.get_arguments().find(|a| {
        a.get_long().is_some_and(|l| format!("--{l}") == option)
            || a.get_short().is_some_and(|c| format!("-{c}") == option)
    });
    match arg {
        Some(a) => a
            .get_long()
            .map(|l| format!("--{l}"))
            .into_iter()
            .chain(a.get_short().map(|c| format!("-{c}")))
            .collect(),
        None => vec![option.to_string()],
    }
}

/// The help text of `sub`'s argument shown as `name` (`<FILE>`, `--top <N>`): its first
/// sentence, lower-cased at the start.
fn help_of(sub: &Command, name: &str) -> Option<String> {
    let bare = bare(name);
    let arg = sub.get_arguments().find(|a| {
        a.get_long().is_some_and(|l| format!("--{l}") == bare)
            || a.get_value_names()
                .is_some_and(|v| v.iter().any(|v| v.as_str() == bare))
            || a.get_id().as_str().eq_ignore_ascii_case(&bare)
    })?;
    let help = arg.get_help()?.to_string();
    let first = help
        .split(". ")
        .next()
        .unwrap_or(&help)
        .trim_end_matches('.');
    // Shown in parentheses: its own become commas.
    let first = first.replace(" (", ", ").replace(')', "");
    let mut chars = first.chars();
    let head = chars.next()?;
    Some(head.to_lowercase().chain(chars).collect())
}

/// One correct use of `sub`, from its `Examples:`: the first that uses `option`, else the first.
/// The example's trailing comment and what it pipes into are left out.
pub fn example(sub: &Command, option: Option<&str>) -> Option<String> {
    let help = sub.get_after_help()?.to_string();
    let lines: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Examples:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(command_of)
        .filter(|l| l.starts_with(&format!("memtrace {}", sub.get_name())))
        .collect();
    let forms = option.map(|o| spellings(sub, o)).unwrap_or_default();
    let uses = |l: &&String| l.split_whitespace().any(|w| forms.iter().any(|f| f == w));
    lines.iter().find(uses).or_else(|| lines.first()).cloned()
}

/// The command of an example line: up to its comment (two spaces) or a pipe.
fn command_of(line: &str) -> String {
    let line = line.trim_start();
    let line = line.split("  ").next().unwrap_or(line);
    let line = line.split(" | ").next().unwrap_or(line);
    let line = line.split(" && ").next().unwrap_or(line);
    line.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::{bare, command_of, is_negative_number};

    #[test]
    fn negative_numbers_are_told_from_options() {
        for n in ["-1", "-5", "-2.5", "-10"] {
            assert!(is_negative_number(n), "{n}");
        }
        for o in ["-f", "--force", "-", "-n", "-1x", "--1", "-.5e"] {
            assert!(!is_negative_number(o), "{o}");
        }
    }

    #[test]
    fn names_and_examples() {
        assert_eq!(bare("<PROGRAM>..."), "PROGRAM");
        assert_eq!(bare("--top <N>"), "--top");
        assert_eq!(
            command_of("  memtrace stats --json out.bin | jq .peak_bytes"),
            "memtrace stats --json out.bin"
        );
        assert_eq!(
            command_of("  memtrace tree out.bin            interactive"),
            "memtrace tree out.bin"
        );
    }
}
