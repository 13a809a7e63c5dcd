// Builds the tracker's thread-local block in C: Rust offers no stable way to ask for the
// initial-exec TLS model, and the default (global-dynamic) model turns every access into a call
// to __tls_get_addr, which costs most of the hook and can allocate after a dlopen.
fn main() {
    println!("cargo:rerun-if-changed=src/base/tls.c");
    println!("cargo:rerun-if-changed=src/session/exec.c");
    cc::Build::new()
        .file("src/base/tls.c")
        .file("src/session/exec.c")
        .opt_level(2)
        .flag("-fvisibility=hidden")
        .compile("memtrace_tls");
}
