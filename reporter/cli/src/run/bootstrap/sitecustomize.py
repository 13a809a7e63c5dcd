# memtrace's start-up hook for a Python run (written by `memtrace run`, removed after it).
# It starts Python tracking by importing the tracker (already loaded into this process), then
# leaves no trace: its directory leaves sys.path and PYTHONPATH, and the sitecustomize module it
# shadowed, if any, runs as it would have. (Until the program imports threading, a finder of the
# hook's waits for that import first on sys.meta_path: see _memtrace_name_threads.)


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
    import atexit

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
        _memtrace_name_threads(sys, tracker.thread_started)
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


def _memtrace_name_threads(sys, started):
    # Each new thread of `threading` names itself to the tracker (its profile hook runs first
    # in the thread). Importing `threading` here would cost every run its import (a third of
    # the hook's start-up on an interpreter that does not import it itself): the hook is set
    # when the program imports it, by a finder that runs once, for that import.
    def name_threads(threading):
        current = threading.current_thread
        threading.setprofile(lambda frame, event, arg: started(current().name))

    if "threading" in sys.modules:
        name_threads(sys.modules["threading"])
        return

    class Loader:
        def __init__(self, loader):
            self.loader = loader

        def create_module(self, spec):
            return self.loader.create_module(spec)

        def exec_module(self, module):
            # The module keeps its own loader (its __loader__ and __spec__ show no trace).
            module.__loader__ = module.__spec__.loader = self.loader
            self.loader.exec_module(module)
            name_threads(module)

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != "threading":
                return None
            try:
                sys.meta_path.remove(Finder)
            except ValueError:
                pass
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(name, path, target) if find is not None else None
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = Loader(spec.loader)
                    return spec
            return None

    sys.meta_path.insert(0, Finder)


def _memtrace_keep_compiled(os, sys, cache, here):
    # Keeps this hook compiled in memtrace's cache directory for the next runs (memtrace copies
    # it into the next hook's __pycache__): compiling it cost a third of a run's start-up. The
    # file is checked by hash against the source, so a stale one is compiled again. Only the
    # interpreter's own modules are used: the program's sys.modules stays as it was.
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
del _memtrace_start, _memtrace_remove, _memtrace_name_threads, _memtrace_keep_compiled
