//! `memtrace completions SHELL` and `memtrace man`: shell completions (clap_complete) and the
//! manual page (clap_mangen), both made from the command line's own definition, so they never
//! drift from it. `main` passes that definition in (the commands do not know the top level).

use clap::{Args, ValueEnum};
use clap_complete::Shell;
use std::io::{self, Write};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShellName {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  memtrace completions bash > ~/.local/share/bash-completion/completions/memtrace
  memtrace completions zsh > ~/.zfunc/_memtrace      with fpath+=(~/.zfunc) before compinit
  memtrace completions fish > ~/.config/fish/completions/memtrace.fish")]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: ShellName,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  memtrace man > ~/.local/share/man/man1/memtrace.1 && man memtrace
  memtrace man -d ~/.local/share/man/man1           memtrace.1 and memtrace-stats.1, ...")]
pub struct ManArgs {
    /// Write memtrace.1 and a page per command (memtrace-run.1, ...) into DIR instead of
    /// printing memtrace.1
    #[arg(short = 'd', long = "dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` of the command line `cli`.
pub fn completions(args: CompletionsArgs, mut cli: clap::Command) -> Result<(), String> {
    let shell = match args.shell {
        ShellName::Bash => Shell::Bash,
        ShellName::Zsh => Shell::Zsh,
        ShellName::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli, "memtrace", &mut out);
    written(io::stdout().lock().write_all(&out))
}

/// Prints the manual page of `cli`, or writes it and one page per command into `args.dir`.
pub fn man(args: ManArgs, cli: clap::Command) -> Result<(), String> {
    let cli = cli.name("memtrace");
    let Some(dir) = args.dir else {
        let mut out = Vec::new();
        page(&cli, &mut out).map_err(|e| format!("cannot write the manual page: {e}"))?;
        return written(io::stdout().lock().write_all(&out));
    };
    if !dir.is_dir() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    // memtrace.1 and memtrace-run.1, ... (as man(1) looks for `memtrace run`).
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    write_pages(&cli, &dir)
        .map_err(|e| format!("cannot write the manual pages into {}: {e}", dir.display()))
}

/// The page of `cmd` and one of each of its commands, into `dir` (as clap_mangen's
/// generate_to names them).
fn write_pages(cmd: &clap::Command, dir: &std::path::Path) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    let mut out = Vec::new();
    page(cmd, &mut out)?;
    let name = clap_mangen::Man::new(cmd.clone()).get_filename();
    std::fs::write(dir.join(name), out)
}

/// A manual page: clap_mangen's sections, but the text after the options (notes, keys and
/// examples) as written: its indented lines kept as they are (clap_mangen refilled them into
/// paragraphs, hyphenated, under "EXTRA").
fn page(cmd: &clap::Command, out: &mut Vec<u8>) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(out)?;
    }
    if let Some(text) = cmd.get_after_long_help().or(cmd.get_after_help()) {
        out.extend_from_slice(notes_and_examples(&text.to_string()).as_bytes());
    }
    if cmd.get_version().or(cmd.get_long_version()).is_some() {
        man.render_version_section(out)?;
    }
    if cmd.get_author().is_some() {
        man.render_authors_section(out)?;
    }
    Ok(())
}

/// The text after a command's options as roff: paragraphs filled, indented lines (examples,
/// keys) kept line for line.
fn notes_and_examples(text: &str) -> String {
    let mut roff = String::from(".SH \"NOTES AND EXAMPLES\"\n");
    let mut kept = false;
    for line in text.lines() {
        let indented = line.starts_with("  ");
        if indented != kept {
            roff.push_str(if indented { ".nf\n" } else { ".fi\n" });
            kept = indented;
        }
        if line.trim().is_empty() {
            roff.push_str(if kept { "\n" } else { ".PP\n" });
            continue;
        }
        roff.push_str(&roff_text(line));
        roff.push('\n');
    }
    if kept {
        roff.push_str(".fi\n");
    }
    roff
}

/// A line of text as roff reads it literally: backslashes and minus signs escaped, and a line
/// that starts with a control character made text.
fn roff_text(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// A closed pipe (`| head`) is fine.
fn written(r: io::Result<()>) -> Result<(), String> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write: {e}")),
    }
}
