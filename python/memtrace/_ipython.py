"""The IPython magic: ``%load_ext memtrace``, then ``%%memtrace`` on a cell runs the cell under
``memtrace.Tracker`` and prints the cell's peak and top lines, and writes the HTML report
(``memtrace flamegraph``'s page) into the results directory."""

from __future__ import annotations

import ast
import io
import itertools
import linecache
import os
import tokenize
from pathlib import Path
from typing import Any

import IPython
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from ._locations import top_lines
from ._native import FileReader, write_flamegraph
from ._sizes import allocations, format_size
from ._tracker import Tracker

#: The file name a cell's frames carry (one for every cell, as `%%time`'s `<timed exec>`).
CELL_FILE = "<memtrace-cell>"

_cells = itertools.count(1)


@magics_class
class MemtraceMagics(Magics):
    @magic_arguments()
    @argument("-n", "--top", type=int, default=5, help="how many top lines to print (5)")
    @argument(
        "-d",
        "--results-dir",
        default="memtrace-results",
        help="where the capture and the HTML report go (memtrace-results)",
    )
    @argument("--native", action="store_true", help="record native stacks too")
    @argument("--leaks", action="store_true", help="report what the cell left live, not its peak")
    @argument("--no-html", action="store_true", help="do not write the HTML report")
    @cell_magic
    def memtrace(self, line: str, cell: str) -> Any:
        """Runs the cell under memtrace and reports its peak memory and top lines; the value
        of its last expression is the cell's, as without the magic."""
        # IPython leaves this frame out of a raising cell's traceback (as %%time's own).
        __tracebackhide__ = True  # noqa: F841
        args = parse_argstring(self.memtrace, line)
        if args.top < 0:
            raise UsageError(f"%%memtrace: -n takes a number of lines, 0 or more (not {args.top})")
        # Absolute: the cell may change the directory, and its capture is looked for after it.
        results = Path(args.results_dir).absolute()
        try:
            results.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"%%memtrace: -d {results}: cannot hold the results: {e}") from None
        number = next(_cells)
        capture = results / f"cell-{number}.bin"
        while capture.exists():
            number = next(_cells)
            capture = results / f"cell-{number}.bin"
        try:
            code, last = self._compile(cell)
        except SyntaxError as e:
            # Shown as a cell's syntax error is (its line), not from inside the magic.
            raise e.with_traceback(None) from None
        tracker = Tracker(capture, native=args.native)
        try:
            tracker.start()
        except (RuntimeError, OSError) as e:
            # Another Tracker runs (or the capture cannot be made): the cell is not run.
            raise UsageError(f"%%memtrace: cannot track the cell: {e}") from None
        value = None
        # A cell that raises is reported too (what it allocated until then), then raises.
        try:
            try:
                exec(code, self.shell.user_ns)  # noqa: S102 (running the user's cell is the point)
                if last is not None:
                    value = eval(last, self.shell.user_ns)  # noqa: S307 (the cell's last line)
            finally:
                tracker.stop()
        finally:
            report(capture, top=args.top, leaks=args.leaks, html=not args.no_html)
        return value

    def _compile(self, cell: str) -> tuple[Any, Any]:
        """The cell as IPython runs it (its `!command` and `%magic` lines made Python first, as
        `%%time` does), compiled with the session's `__future__` flags (not
        this module's): its code, and its last expression's apart (None when it ends with a
        statement). Its source is put where tracebacks look for it."""
        source = self.shell.transform_cell(cell)
        # IPython drops a cell's leading blank lines: put them back, so that a line's number
        # is the one it has in the cell as written.
        dropped = _leading_blank_lines(cell) - _leading_blank_lines(source)
        source = "\n" * max(dropped, 0) + source
        # Before parsing: a syntax error shows its line from here.
        linecache.cache[CELL_FILE] = (len(source), None, source.splitlines(True), CELL_FILE)
        tree = ast.parse(source, CELL_FILE)
        flags = getattr(self.shell.compile, "flags", 0)
        last = None
        # A last expression followed by `;` is run but not displayed, as IPython does.
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_with_semicolon(source):
            expression = ast.Expression(tree.body.pop().value)
            last = compile(expression, CELL_FILE, "eval", flags=flags, dont_inherit=True)
        return compile(tree, CELL_FILE, "exec", flags=flags, dont_inherit=True), last


def _ends_with_semicolon(source: str) -> bool:
    """Whether the source's last token (comments aside) is a `;`."""
    last = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type not in _NOT_CODE:
                last = token
    except (tokenize.TokenError, SyntaxError):
        return False
    return last is not None and last.type == tokenize.OP and last.string == ";"


_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}


def _leading_blank_lines(text: str) -> int:
    n = 0
    for line in text.splitlines():
        if line.strip():
            break
        n += 1
    return n


def report(capture: Path, *, top: int, leaks: bool, html: bool) -> None:
    """Prints a cell's peak (or leaks) and its top lines; writes the HTML page."""
    reader = FileReader(capture)
    meta = reader.metadata
    if leaks:
        total, count = meta.leaked_bytes, meta.leaked_allocations
        print(f"memtrace: the cell left {format_size(total)} ({total} bytes) live in {allocations(count)}")
        records = reader.leaked_records()
    else:
        total, count = meta.peak_bytes, meta.peak_allocations
        print(f"memtrace: the cell's peak: {format_size(total)} ({total} bytes) in {allocations(count)}")
        records = reader.peak_records()
    # The magic's own work (running the cell) is not the cell's, nor IPython's own (its
    # history writer, which may write while the cell runs).
    records = [r for r in records if not _ipython_s(r)]
    for l in top_lines(records, top):
        print(f"  {format_size(l.size):>11} ({l.size} bytes) in {l.n_allocations}: {l.label}")
    if html:
        page = capture.with_suffix(".html")
        write_flamegraph(capture, page, leaks=leaks)
        print(f"memtrace: wrote {page}")


_IPYTHON_DIR = str(Path(IPython.__file__).parent) + os.sep


def _ours(file: str) -> bool:
    """Whether a frame's file is the magic's or IPython's."""
    return file == __file__ or file.startswith(_IPYTHON_DIR)


def _ipython_s(record: Any) -> bool:
    """Whether an allocation is the magic's or IPython's work: from the innermost frame out,
    a frame of theirs comes before any of the cell's. The history writer's thread allocates
    inside the standard library (contextlib, sqlite3) called from IPython's code: those
    innermost frames are neither, and were listed as the cell's lines."""
    for _function, file, _line in record.python_stack():
        if file == CELL_FILE:
            return False
        if _ours(file):
            return True
    return False


def register(ipython: Any) -> None:
    ipython.register_magics(MemtraceMagics)
