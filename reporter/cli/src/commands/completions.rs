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
    clap_mangen::generate_to(cli, &dir)
        .map_err(|e| format!("cannot write the manual pages into {}: {e}", dir.display()))?;
    Ok(())
}

fn page(cmd: &clap::Command, out: &mut Vec<u8>) -> io::Result<()> {
    clap_mangen::Man::new(cmd.clone()).render(out)
}

/// A closed pipe (`| head`) is fine.
fn written(r: io::Result<()>) -> Result<(), String> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("cannot write: {e}")),
    }
}
