//! Usage errors: one line on stderr, exit status 1, naming what is missing or wrong, with one
//! correct use of the command taken from its help's examples.

use std::process::Command;

/// The one line `memtrace ARGS` prints on stderr (asserting exit 1 and nothing on stdout).
fn error_line(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_memtrace"))
        .args(args)
        .output()
        .expect("memtrace runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    err.trim_end().to_string()
}

#[test]
fn a_missing_argument_is_named_with_an_example() {
    assert_eq!(
        error_line(&["run"]),
        "memtrace: run: missing PROGRAM (the program and its arguments; or a Python script.py, \
         -m MODULE, -c CODE or -, read from stdin, and its arguments); for example: memtrace \
         run script.py arg1 \
         (see 'memtrace run --help' and 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["stats"]),
        "memtrace: stats: missing FILE (the capture file written by `memtrace run`); for \
         example: memtrace stats out.bin (see 'memtrace stats --help' and 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["diff"]),
        "memtrace: diff: missing BASE (the capture to compare against) and NEW (the capture \
         compared); for example: memtrace diff before.bin after.bin (see 'memtrace diff \
         --help' and 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["diff", "a.bin"]),
        "memtrace: diff: missing NEW (the capture compared); for example: memtrace diff \
         before.bin after.bin (see 'memtrace diff --help' and 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["export", "out.bin"]),
        "memtrace: export: missing --format (the format to write); for example: memtrace \
         export out.bin --format folded (see 'memtrace export --help' and 'memtrace --help')"
    );
}

#[test]
fn a_wrong_value_lists_what_is_allowed_and_shows_the_option_used() {
    assert_eq!(
        error_line(&["export", "out.bin", "--format", "svg"]),
        "memtrace: export: invalid value 'svg' for '--format <FORMAT>' (possible values: \
         folded, speedscope, pprof, csv); for example: memtrace export out.bin --format folded \
         (see 'memtrace export --help' and 'memtrace --help')"
    );
    // The example is one that uses the option, in either spelling (-n for --top).
    assert_eq!(
        error_line(&["stats", "-n", "x", "out.bin"]),
        "memtrace: stats: invalid value 'x' for '--top <N>': 'x' is not a count (a whole \
         number, 1 or more); for example: memtrace stats -n 20 out.bin (see 'memtrace stats \
         --help' and 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["stats", "--thread"]),
        "memtrace: stats: a value is required for '--thread <NAME|TID>' but none was supplied; \
         for example: memtrace stats --thread worker-1 out.bin (see 'memtrace stats --help' \
         and 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["tree", "--leaks", "--temporary", "out.bin"]),
        "memtrace: tree: the argument '--leaks' cannot be used with '--temporary'; for \
         example: memtrace tree --leaks --text out.bin (see 'memtrace tree --help' and \
         'memtrace --help')"
    );
}

#[test]
fn an_unknown_option_or_command_is_named() {
    assert_eq!(
        error_line(&["stats", "--frob", "out.bin"]),
        "memtrace: stats: unknown option '--frob'; for example: memtrace stats out.bin (see \
         'memtrace stats --help' and 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["stats", "a.bin", "b.bin"]),
        "memtrace: stats: unexpected argument 'b.bin'; for example: memtrace stats out.bin \
         (see 'memtrace stats --help' and 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["stat", "out.bin"]),
        "memtrace: unknown command 'stat' (did you mean 'stats'?); for example: memtrace stats \
         out.bin (see 'memtrace --help')"
    );
    assert_eq!(
        error_line(&["frob"]),
        "memtrace: unknown command 'frob'; for example: memtrace run script.py arg1 (see \
         'memtrace --help')"
    );
}

/// A negative number where a count or a duration goes: clap reads it as an option, and the
/// line said "unknown option '-1'".
#[test]
fn a_negative_number_is_named_as_one() {
    for args in [
        &["stats", "-n", "-1", "out.bin"][..],
        &["tree", "--depth", "-1", "out.bin"],
        &["attach", "--duration", "-1", "1234"],
    ] {
        let line = error_line(args);
        assert!(
            line.contains(": '-1' is a negative number: counts, depths, durations and pids are 0 or more; for example: "),
            "{args:?}: {line}"
        );
    }
}
