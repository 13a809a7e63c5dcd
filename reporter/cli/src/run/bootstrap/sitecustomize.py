# memtrace's start-up hook for a Python run (written by `memtrace run`, removed after it).
# It starts Python tracking by importing the tracker (already loaded into this process), then
# leaves no trace: its directory leaves sys.path and PYTHONPATH, and the sitecustomize module it
# shadowed, if any, runs as it would have.


def _memtrace_start():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    # Set for the interpreter's start, removed here: absent, this is not the start memtrace
    # prepared but a subinterpreter (its sys.path comes from the main interpreter's start),
    # which only passes on to the program's own sitecustomize: it must neither change the
    # process's environment nor start tracking again (its atexit would end the capture).
    armed = os.environ.pop("MEMTRACE_PYTHON_HOOK_ARMED", None) is not None
    private = None
    tracker = None
    if armed:
        # A followed child's hook is a directory of its own (the tracker made it): removed below.
        private = os.environ.pop("MEMTRACE_PYTHON_HOOK_PRIVATE", None)
        original = os.environ.pop("MEMTRACE_PYTHONPATH", None)
        if original is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = original
        try:
            import _memtrace_tracker as tracker
        except Exception:
            # Not a Python the tracker knows (3.6 to 3.8 raise SystemError): the program runs
            # as it would, untracked by Python.
            tracker = None
    sys.path[:] = [p for p in sys.path if _memtrace_absolute(os, p) != here]
    sys.path_importer_cache.pop(here, None)
    sys.modules.pop("_memtrace_tracker", None)
    if tracker is not None:
        import atexit

        # The script, named as its code objects will name it (CPython makes a relative path
        # absolute by prefixing the current directory): its compilation, before its first
        # line runs, is charged to it. `-c` code is "<string>"; `-m` runs under runpy's frames.
        main = sys.argv[0] if sys.argv else ""
        if main == "-c":
            tracker.script_path("<string>")
        elif main not in ("", "-", "-m"):
            path = main if os.path.isabs(main) else os.path.join(os.getcwd(), main)
            if os.path.isfile(path):
                tracker.script_path(path)
        atexit.register(tracker.script_finished)
        # A program that runs the exit functions itself goes on: the tracker's is registered
        # again after them (CPython clears them once run), for the interpreter's end.
        atexit._run_exitfuncs = tracker.exit_functions(atexit._run_exitfuncs)
        # Threads are named once the program imports threading: importing it here would add
        # milliseconds to every start and change the program's own imports. Until then the
        # tracker module is the first finder: it finds nothing, but has threading's loader
        # name the threads (in C: no frame of memtrace's for the program's tracers to see).
        threading = sys.modules.get("threading")
        if threading is not None:
            tracker.name_threads(threading)
        else:
            sys.meta_path.insert(0, tracker)
    if private is not None and os.path.abspath(private) == here:
        _memtrace_remove(os, here)
    elif armed and getattr(sys, "dont_write_bytecode", False):
        _memtrace_write_compiled(os, sys, here, sys._getframe(1).f_code)
    if getattr(sys, "pycache_prefix", None):
        _memtrace_forget_cached(os, sys, here, sys.pycache_prefix)
    me = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401  (the one this file shadowed)
    except ImportError as exc:
        # An import inside the program's own failed: site.py reports it ("Error in
        # sitecustomize"), as it would have. None of the program's: nothing to say. (Python 2's
        # ImportError has no name: its message ends with the module's.)
        name = getattr(exc, "name", None)
        if name is None and str(exc).endswith("sitecustomize"):
            name = "sitecustomize"
        if name != "sitecustomize":
            raise
        # None of the program's: the import that runs this file ends as it would have, "no
        # module named sitecustomize", which site.py passes over; the import machinery then
        # takes this file's module out of sys.modules (a program's `import sitecustomize`,
        # or `-m sitecustomize` of its own, must not find it).
        if me is not None:
            sys.modules["sitecustomize"] = me
        missing = ImportError("No module named 'sitecustomize'")
        missing.name = "sitecustomize"
        raise missing


def _memtrace_absolute(os, path):
    # An entry made absolute as the import system makes it; a relative one stays as it is when
    # the current directory is gone (3.10 keeps PYTHONPATH's relative entries).
    try:
        return os.path.abspath(path or ".")
    except OSError:
        return path


def _memtrace_write_compiled(os, sys, here, code):
    # The interpreter writes no bytecode (PYTHONDONTWRITEBYTECODE, -B), so it would compile
    # this hook at every run: the hook writes its own compiled form (once: memtrace keeps it
    # between runs). The program's modules are still not written.
    tag = getattr(getattr(sys, "implementation", None), "cache_tag", None)
    to_pyc = getattr(sys.modules.get("_frozen_importlib_external"), "_code_to_timestamp_pyc", None)
    if tag is None or to_pyc is None:
        return
    cache = os.path.join(here, "__pycache__")
    path = os.path.join(cache, "sitecustomize." + tag + ".pyc")
    if os.path.exists(path):
        return
    # Written aside, then renamed: another interpreter of the run may import the hook
    # meanwhile, and must never read half a file.
    part = path + "." + str(os.getpid()) + ".part"
    try:
        if not os.path.isdir(cache):
            os.mkdir(cache, 0o700)
        with open(part, "xb") as f:
            f.write(to_pyc(code))
        os.replace(part, path)
    except Exception:
        try:
            os.remove(part)
        except OSError:
            pass


def _memtrace_forget_cached(os, sys, here, prefix):
    # With PYTHONPYCACHEPREFIX the interpreter wrote the hook's compiled form under the
    # prefix, at a path made from the hook's directory, new each run: removed, with the
    # directories made for it (each only when empty).
    cache_from_source = getattr(sys.modules.get("_frozen_importlib_external"), "cache_from_source", None)
    if cache_from_source is None:
        return
    try:
        path = cache_from_source(os.path.join(here, "sitecustomize.py"))
        os.remove(path)
    except Exception:
        return
    top = os.path.abspath(prefix)
    at = os.path.dirname(path)
    while at.startswith(top + os.sep):
        try:
            os.rmdir(at)
        except OSError:
            break
        at = os.path.dirname(at)


def _memtrace_remove(os, here):
    cache = os.path.join(here, "__pycache__")
    try:
        names = os.listdir(cache)
    except OSError:
        names = []
    for name in names:
        try:
            os.remove(os.path.join(cache, name))
        except OSError:
            pass
    for name in ("sitecustomize.py", "_memtrace_tracker.so", "owner"):
        path = os.path.join(here, name)
        try:
            os.remove(path)
        except OSError:
            pass
    for path in (cache, here):
        try:
            os.rmdir(path)
        except OSError:
            pass


_memtrace_start()
del _memtrace_start, _memtrace_remove, _memtrace_write_compiled, _memtrace_forget_cached
del _memtrace_absolute
