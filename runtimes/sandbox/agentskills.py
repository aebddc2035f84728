# Corral's agent skills: the helper functions OpenHands puts into its IPython
# kernel (open_file, goto_line, scroll_up/down, search_dir, search_file,
# find_file, parse_pdf/docx/latex/pptx), re-implemented with the Python
# standard library only. Their printed output is OpenHands' text to the
# character, because recorded trajectories replay against it.
#
# ipython_driver.py serves this source as the module `agentskills` and
# copies its __all__ into the cells' globals when the interpreter starts, so
# a cell can call open_file(...) directly or `import agentskills`. The
# document parsers live in agentskills_readers.py, compiled on first use.
#
# Rules for this file: standard library only (the sandbox may have a bare
# python3); nothing expensive at import time (every kernel start pays for
# compiling this file).
import io
import os

CURRENT_FILE = None
CURRENT_LINE = 1
WINDOW = 100

__all__ = [
    "open_file",
    "goto_line",
    "scroll_down",
    "scroll_up",
    "search_dir",
    "search_file",
    "find_file",
    "parse_pdf",
    "parse_docx",
    "parse_latex",
    "parse_pptx",
]


def _error(msg):
    print("ERROR: " + msg)


def _clamp(value, lo, hi):
    return max(lo, min(value, hi))


def _line_count(text):
    # OpenHands counts by iterating the text file (universal newlines) and
    # never reports fewer than one line; the window below splits with
    # str.splitlines, which also breaks on \v, \f, \x1c.. and \u2028: the two
    # counts can differ for such files, exactly as they do in OpenHands.
    return max(1, text.count("\n") + (1 if text and not text.endswith("\n") else 0))


def _read_text(path):
    """The file's text, or None after printing why it cannot be shown."""
    try:
        with open(path) as f:
            return f.read()
    except UnicodeDecodeError as e:
        _not_text(path, e)
    except OSError as e:
        _error("Cannot read %s: %s" % (path, e.strerror or e))
    return None


def _not_text(path, err):
    _error(
        "File %s is not a UTF-8 text file (%s); these skills show text only. "
        "Use parse_pdf/parse_docx/parse_pptx for documents, or open it as bytes in Python." % (path, err.reason)
    )


def _have_open_file():
    if not CURRENT_FILE or not os.path.isfile(CURRENT_FILE):
        _error("No file open. Use the open_file function first.")
        return False
    return True


def _window_bounds(current, total, window, from_current):
    """First and last line (1-based, inclusive) of the window OpenHands shows."""
    if from_current:
        # scroll_up/scroll_down: the window starts at the current line.
        start, end = max(1, current), min(total, current + window)
    else:
        half = max(1, window // 2)
        start, end = max(1, current - half), min(total, current + half)
    if start == 1:
        end = min(total, start + window - 1)
    if end == total:
        start = max(1, end - window + 1)
    return start, end


def _render_window(text, target, window, from_current=False):
    """The numbered window of text around target, without the header."""
    global CURRENT_LINE
    if not text.endswith("\n"):
        text += "\n"
    lines = text.splitlines(True)
    total = len(lines)
    CURRENT_LINE = _clamp(target, 1, total)
    start, end = _window_bounds(CURRENT_LINE, total, window, from_current)
    out = ["(%d more lines above)\n" % (start - 1) if start > 1 else "(this is the beginning of the file)\n"]
    for i in range(start, end + 1):
        line = "%d|%s" % (i, lines[i - 1])
        out.append(line if line.endswith("\n") else line + "\n")
    out.append("(%d more lines below)\n" % (total - end) if end < total else "(this is the end of the file)\n")
    return "".join(out).rstrip()


def _header(path, total):
    return "[File: %s (%d lines total)]\n" % (os.path.abspath(path), total)


def _show(path, target, window, from_current, line_check=None):
    """Header and window for open_file/goto_line/scroll_*, or None after an error.

    line_check(total) validates or moves the position before the window is
    drawn; a target of None means the current line after that.
    """
    text = _read_text(path)
    if text is None:
        return None
    total = _line_count(text)
    if line_check is not None and not line_check(total):
        return None
    if target is None:
        target = CURRENT_LINE
    return _header(path, total) + _render_window(text, target, window, from_current)


def open_file(path, line_number=1, context_lines=WINDOW):
    """Opens a file in the editor and optionally positions at a specific line.

    The function displays a limited window of content, centered around the specified line
    number if provided. To view the complete file content, the agent should use scroll_down and scroll_up
    commands iteratively.

    Args:
        path: The path to the file to open. Absolute path is recommended.
        line_number: The target line number to center the view on (if possible).
            Defaults to 1.
        context_lines: Maximum number of lines to display in the view window.
            Limited to 100 lines. Defaults to 100.
    """
    global CURRENT_FILE, CURRENT_LINE
    if not os.path.isfile(path):
        _error("File %s not found." % path)
        return
    CURRENT_FILE = os.path.abspath(path)

    def check(total):
        global CURRENT_LINE
        if not isinstance(line_number, int) or not 1 <= line_number <= total:
            _error("Line number must be between 1 and %d" % total)
            return False
        CURRENT_LINE = line_number
        return True

    if context_lines is None or context_lines < 1:
        context_lines = WINDOW
    out = _show(CURRENT_FILE, line_number, _clamp(context_lines, 1, 100), False, check)
    if out is None:
        return
    if out.strip().endswith("more lines below)"):
        out += "\n[Use `scroll_down` to view the next 100 lines of the file!]"
    print(out)


def goto_line(line_number):
    """Moves the window to show the specified line number.

    Args:
        line_number: int: The line number to move to.
    """
    if not _have_open_file():
        return

    def check(total):
        if not isinstance(line_number, int) or not 1 <= line_number <= total:
            _error("Line number must be between 1 and %d." % total)
            return False
        return True

    out = _show(CURRENT_FILE, line_number, WINDOW, False, check)
    if out is not None:
        print(out)


def _scroll(delta):
    if not _have_open_file():
        return

    def move(total):
        global CURRENT_LINE
        CURRENT_LINE = _clamp(CURRENT_LINE + delta, 1, total)
        return True

    out = _show(CURRENT_FILE, None, WINDOW, True, move)
    if out is not None:
        print(out)


def scroll_down():
    """Moves the window down by 100 lines.

    Args:
        None
    """
    _scroll(WINDOW)


def scroll_up():
    """Moves the window up by 100 lines.

    Args:
        None
    """
    _scroll(-WINDOW)


def _print_matches(term, where, lines):
    print('[Found %d matches for "%s" in %s]' % (len(lines), term, where))
    print("\n".join(lines + ['[End of matches for "%s" in %s]' % (term, where)]))


def _regular_files(dir_path):
    """The regular, non-hidden files under dir_path, in os.walk order.

    FIFOs, sockets and devices are skipped: opening a FIFO would block the
    cell forever.
    """
    import stat

    for root, _, files in os.walk(dir_path):
        for name in files:
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue
            except OSError:
                continue
            yield path


def search_dir(search_term, dir_path="./"):
    """Searches for search_term in all files in dir. If dir is not provided, searches in the current directory.

    Args:
        search_term: str: The term to search for.
        dir_path: str: The path to the directory to search.
    """
    if not os.path.isdir(dir_path):
        _error("Directory %s not found" % dir_path)
        return
    matches = []
    for path in _regular_files(dir_path):
        try:
            with open(path, "r", errors="ignore") as f:
                for n, line in enumerate(f, 1):
                    if search_term in line:
                        matches.append((path, n, line.strip()))
        except OSError:
            continue  # unreadable (permissions, vanished): not a match
    if not matches:
        print('No matches found for "%s" in %s' % (search_term, dir_path))
        return
    files = len({m[0] for m in matches})
    if files > 100:
        print('More than %d files matched for "%s" in %s. Please narrow your search.' % (files, search_term, dir_path))
        return
    _print_matches(search_term, dir_path, ["%s (Line %d): %s" % m for m in matches])


def search_file(search_term, file_path=None):
    """Searches for search_term in file. If file is not provided, searches in the current open file.

    Args:
        search_term: The term to search for.
        file_path: The path to the file to search.
    """
    if file_path is None:
        file_path = CURRENT_FILE
    if file_path is None:
        _error("No file specified or open. Use the open_file function first.")
        return
    if not os.path.isfile(file_path):
        _error("File %s not found." % file_path)
        return
    text = _read_text(file_path)
    if text is None:
        return
    # StringIO iterates lines as the file would (on "\n" only).
    matches = [(n, line.strip()) for n, line in enumerate(io.StringIO(text), 1) if search_term in line]
    if not matches:
        print('[No matches found for "%s" in %s]' % (search_term, file_path))
        return
    _print_matches(search_term, file_path, ["Line %d: %s" % m for m in matches])


def find_file(file_name, dir_path="./"):
    """Finds all files with the given name in the specified directory.

    Args:
        file_name: str: The name of the file to find.
        dir_path: str: The path to the directory to search.
    """
    if not os.path.isdir(dir_path):
        _error("Directory %s not found" % dir_path)
        return
    matches = []
    for root, _, files in os.walk(dir_path):
        matches += [os.path.join(root, f) for f in files if file_name in f]
    if not matches:
        print('[No matches found for "%s" in %s]' % (file_name, dir_path))
        return
    _print_matches(file_name, dir_path, matches)


# ---------------------------------------------------------------- parsers
# Thin entry points carrying OpenHands' docstrings: the code is in
# agentskills_readers, compiled on the first call (most kernels never parse
# a document).


def _reader(name, doc):
    def parse(file_path):
        import agentskills_readers

        getattr(agentskills_readers, name)(file_path)

    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = doc
    return parse


parse_pdf = _reader(
    "parse_pdf",
    """Parses the content of a PDF file and prints it.

    Args:
        file_path: str: The path to the file to open.
    """,
)
parse_docx = _reader(
    "parse_docx",
    """Parses the content of a DOCX file and prints it.

    Args:
        file_path: str: The path to the file to open.
    """,
)
parse_latex = _reader(
    "parse_latex",
    """Parses the content of a LaTex file and prints it.

    Args:
        file_path: str: The path to the file to open.
    """,
)
parse_pptx = _reader(
    "parse_pptx",
    """Parses the content of a pptx file and prints it.

    Args:
        file_path: str: The path to the file to open.
    """,
)
