# memtrace's start-up hook for a Python run (written by `memtrace run`, removed after it).
# It starts Python tracking by importing the tracker (already loaded into this process), then
# leaves no trace: its directory leaves sys.path and PYTHONPATH, and the sitecustomize module it
# shadowed, if any, runs as it would have.


def _memtrace_start():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    # A followed child's hook is a directory of its own (the tracker made it): removed below.
    private = os.environ.pop("MEMTRACE_PYTHON_HOOK_PRIVATE", None)
    cache = os.environ.pop("MEMTRACE_HOOK_CACHE", None)
    original = os.environ.pop("MEMTRACE_PYTHONPATH", None)
    if original is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = original
    # Imported first, so that their frames are not tracked (and threading's import, some 700 KB
    # live on an interpreter that does not import it at start-up, is not charged to a script
    # that imports it: memray's runner imports it before the script as well).
    import atexit
    import threading

    try:
        import _memtrace_tracker as tracker
    except ImportError:
        tracker = None
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path_importer_cache.pop(here, None)
    sys.modules.pop("_memtrace_tracker", None)
    if tracker is not None:
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
        started = tracker.thread_started
        current = threading.current_thread
        threading.setprofile(lambda frame, event, arg: started(current().name))
    if cache is not None:
        _memtrace_keep_compiled(os, sys, cache, here)
    if private is not None and os.path.abspath(private) == here:
        _memtrace_remove(os, here)
    me = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401  (the one this file shadowed)
    except ImportError:
        if me is not None:
            sys.modules["sitecustomize"] = me


def _memtrace_keep_compiled(os, sys, cache, here):
    # Keeps this hook compiled in memtrace's cache directory for the next runs (memtrace copies
    # it into the next hook's __pycache__): compiling it was a quarter of what a run added to
    # start-up. The file is checked by hash against the source, so a stale one is compiled
    # again. Only the interpreter's own modules are used: sys.modules stays as it was.
    tag = sys.implementation.cache_tag
    target = os.path.join(cache, "sitecustomize.%s.pyc" % tag)
    if tag is None or os.path.exists(target):
        return
    try:
        import _imp

        external = sys.modules["_frozen_importlib_external"]
        source_path = os.path.join(here, "sitecustomize.py")
        with open(source_path, "rb") as f:
            source = f.read()
        code = compile(source, source_path, "exec", dont_inherit=True, optimize=0)
        data = external._code_to_hash_pyc(
            code, _imp.source_hash(external._RAW_MAGIC_NUMBER, source), True
        )
        os.makedirs(cache, mode=0o700, exist_ok=True)
        external._write_atomic(target, data, 0o600)
    except Exception:
        pass


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
    for path in (os.path.join(here, "sitecustomize.py"), os.path.join(here, "_memtrace_tracker.so")):
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
del _memtrace_start, _memtrace_remove, _memtrace_keep_compiled
