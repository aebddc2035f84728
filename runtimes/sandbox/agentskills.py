# Corral's agent skills: the helper functions OpenHands puts into its IPython
# kernel (open_file, goto_line, scroll_up/down, search_dir, search_file,
# find_file, parse_pdf/docx/latex/pptx), re-implemented with the Python
# standard library only. Their printed output is OpenHands' text to the
# character, because recorded trajectories replay against it.
#
# ipython_driver.py loads this source as the module `agentskills` when the
# interpreter starts and copies __all__ into the cells' globals, so a cell
# can call open_file(...) directly or `import agentskills`.
#
# Rules for this file: standard library only (the sandbox may have a bare
# python3); nothing expensive at import time (every kernel start pays for it:
# zipfile, xml and subprocess are imported inside the parsers); the parsers
# shell out to Debian tools where OpenHands uses a PyPI library and say which
# package to install when the tool is missing.
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


def _count_lines(path):
    # OpenHands counts by iterating the text file (universal newlines) and
    # never reports fewer than one line; the window below splits with
    # str.splitlines, which also breaks on \v, \f, \x1c.. and \u2028: the two
    # counts can differ for such files, exactly as they do in OpenHands.
    with open(path) as f:
        return max(1, sum(1 for _ in f))


def _not_text(path, err):
    _error(
        "File %s is not a UTF-8 text file (%s); these skills show text only. "
        "Use parse_pdf/parse_docx/parse_pptx for documents, or open it as bytes in Python." % (path, err.reason)
    )


def _have_open_file(path=None):
    path = path or CURRENT_FILE
    if not path or not os.path.isfile(path):
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


def _render_window(path, target, window, from_current=False):
    """The numbered window text (without the header), or None after an error."""
    global CURRENT_LINE
    if not _have_open_file(path):
        return None
    with open(path) as f:
        content = f.read()
    if not content.endswith("\n"):
        content += "\n"
    lines = content.splitlines(True)
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
    try:
        total = _count_lines(path)
        if line_check is not None and not line_check(total):
            return None
        if target is None:
            target = CURRENT_LINE
        body = _render_window(path, target, window, from_current)
    except UnicodeDecodeError as e:
        _not_text(path, e)
        return None
    except OSError as e:
        _error("Cannot read %s: %s" % (path, e.strerror or e))
        return None
    if body is None:
        return None
    return _header(path, total) + body


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


def _regular_files(dir_path, skip_hidden):
    """(path, name) of the regular files under dir_path, in os.walk order.

    FIFOs, sockets and devices are skipped: opening a FIFO would block the
    cell forever.
    """
    import stat

    for root, _, files in os.walk(dir_path):
        for name in files:
            if skip_hidden and name.startswith("."):
                continue
            path = os.path.join(root, name)
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue
            except OSError:
                continue
            yield path, name


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
    for path, _ in _regular_files(dir_path, skip_hidden=True):
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
    out = ['[Found %d matches for "%s" in %s]' % (len(matches), search_term, dir_path)]
    out += ["%s (Line %d): %s" % m for m in matches]
    out.append('[End of matches for "%s" in %s]' % (search_term, dir_path))
    print("\n".join(out))


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
    matches = []
    try:
        with open(file_path) as f:
            for n, line in enumerate(f, 1):
                if search_term in line:
                    matches.append((n, line.strip()))
    except UnicodeDecodeError as e:
        _not_text(file_path, e)
        return
    except OSError as e:
        _error("Cannot read %s: %s" % (file_path, e.strerror or e))
        return
    if not matches:
        print('[No matches found for "%s" in %s]' % (search_term, file_path))
        return
    out = ['[Found %d matches for "%s" in %s]' % (len(matches), search_term, file_path)]
    out += ["Line %d: %s" % m for m in matches]
    out.append('[End of matches for "%s" in %s]' % (search_term, file_path))
    print("\n".join(out))


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
    out = ['[Found %d matches for "%s" in %s]' % (len(matches), file_name, dir_path)]
    out += matches
    out.append('[End of matches for "%s" in %s]' % (file_name, dir_path))
    print("\n".join(out))


# ---------------------------------------------------------------- parsers

# A document part bigger than this is refused rather than inflated into
# memory (a zip bomb would otherwise take the kernel down).
_MAX_PART = 256 << 20


def _readable(path):
    """True when path is a readable regular file; prints OpenHands-style errors otherwise."""
    if os.path.isdir(path):
        _error("%s is a directory, not a file." % path)
        return False
    if not os.path.isfile(path):
        _error("File %s not found." % path)
        return False
    return True


def parse_pdf(file_path):
    """Parses the content of a PDF file and prints it.

    Args:
        file_path: str: The path to the file to open.
    """
    import shutil
    import subprocess

    print("[Reading PDF file from %s]" % file_path)
    if not _readable(file_path):
        return
    tool = shutil.which("pdftotext")
    if tool is None:
        _error(
            "parse_pdf needs the pdftotext command, which is not installed in this sandbox. "
            "Install the Debian/Ubuntu package poppler-utils (apt-get install -y poppler-utils) and call parse_pdf again."
        )
        return
    r = subprocess.run([tool, "-enc", "UTF-8", file_path, "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        # The last line is the reason; earlier ones are parse warnings.
        lines = r.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else "exit status %d" % r.returncode
        _error("pdftotext could not read %s as a PDF (%s)." % (file_path, why))
        return
    # pdftotext ends every page with a form feed.
    pages = r.stdout.decode("utf-8", "replace").split("\f")[:-1]
    text = "".join("@@ Page %d @@\n%s\n\n" % (i, p.rstrip("\n")) for i, p in enumerate(pages, 1))
    print(text.strip())


def _zip_part(z, name):
    info = z.getinfo(name)
    if info.file_size > _MAX_PART:
        raise ValueError("%s is %d bytes uncompressed, more than the %d this reader accepts" % (name, info.file_size, _MAX_PART))
    return z.read(name)


def _rels(z, source):
    """Relationship id -> target part name for the part `source` of an OPC zip."""
    import posixpath
    import xml.etree.ElementTree as ET

    base, leaf = posixpath.split(source)
    rels_name = posixpath.join(base, "_rels", leaf + ".rels")
    if rels_name not in z.namelist():
        return {}
    out = {}
    for rel in ET.fromstring(_zip_part(z, rels_name)):
        target = rel.get("Target", "")
        if rel.get("TargetMode") == "External":
            continue
        name = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(base, target))
        out[rel.get("Id")] = (rel.get("Type", ""), name)
    return out


def _main_part(z, fallback):
    for typ, name in _rels(z, "").values():
        if typ.endswith("/officeDocument"):
            return name
    return fallback


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx_run_text(r):
    # What python-docx's Run.text gives for each run child.
    out = []
    for c in r:
        tag = c.tag
        if tag == _W + "t":
            out.append(c.text or "")
        elif tag in (_W + "tab", _W + "ptab"):
            out.append("\t")
        elif tag == _W + "br":
            if c.get(_W + "type", "textWrapping") == "textWrapping":
                out.append("\n")
        elif tag == _W + "cr":
            out.append("\n")
        elif tag == _W + "noBreakHyphen":
            out.append("-")
    return "".join(out)


def _docx_paragraphs(xml_bytes):
    import xml.etree.ElementTree as ET

    body = ET.fromstring(xml_bytes).find(_W + "body")
    if body is None:
        return []
    paras = []
    for p in body.findall(_W + "p"):  # direct children only, as python-docx
        text = []
        for c in p:
            if c.tag == _W + "r":
                text.append(_docx_run_text(c))
            elif c.tag == _W + "hyperlink":
                text += [_docx_run_text(r) for r in c.findall(_W + "r")]
        paras.append("".join(text))
    return paras


def parse_docx(file_path):
    """Parses the content of a DOCX file and prints it.

    Args:
        file_path: str: The path to the file to open.
    """
    import zipfile

    print("[Reading DOCX file from %s]" % file_path)
    if not _readable(file_path):
        return
    try:
        with zipfile.ZipFile(file_path) as z:
            paras = _docx_paragraphs(_zip_part(z, _main_part(z, "word/document.xml")))
    except Exception as e:  # any malformed zip or XML: say so, no traceback
        _error("%s is not a readable DOCX file (%s: %s)." % (file_path, type(e).__name__, e))
        return
    print("".join("@@ Page %d @@\n%s\n\n" % (i, t) for i, t in enumerate(paras, 1)))


_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def _pptx_slides(z):
    """Slide part names in presentation order."""
    import xml.etree.ElementTree as ET

    pres = _main_part(z, "ppt/presentation.xml")
    rels = _rels(z, pres)
    ids = ET.fromstring(_zip_part(z, pres)).find(_P + "sldIdLst")
    if ids is None:
        return []
    return [rels[s.get(_R + "id")][1] for s in ids.findall(_P + "sldId") if s.get(_R + "id") in rels]


def _pptx_shape_texts(xml_bytes):
    # python-pptx's slide.shapes holds the top-level shapes; only autoshapes
    # and placeholders (p:sp) have .text: paragraphs joined by "\n", a:br as "\v".
    import xml.etree.ElementTree as ET

    tree = ET.fromstring(xml_bytes).find(_P + "cSld/" + _P + "spTree")
    if tree is None:
        return []
    texts = []
    for sp in tree.findall(_P + "sp"):
        body = sp.find(_P + "txBody")
        paras = []
        for p in body.findall(_A + "p") if body is not None else []:
            part = []
            for c in p:
                if c.tag in (_A + "r", _A + "fld"):
                    part.append(c.findtext(_A + "t") or "")
                elif c.tag == _A + "br":
                    part.append("\v")
            paras.append("".join(part))
        texts.append("\n".join(paras))
    return texts


def parse_pptx(file_path):
    """Parses the content of a pptx file and prints it.

    Args:
        file_path: str: The path to the file to open.
    """
    import zipfile

    print("[Reading PowerPoint file from %s]" % file_path)
    if not os.path.exists(file_path):
        print("Error reading PowerPoint file: Package not found at '%s'" % file_path)
        return
    try:
        text = []
        with zipfile.ZipFile(str(file_path)) as z:
            for i, slide in enumerate(_pptx_slides(z), 1):
                text.append("@@ Slide %d @@" % i)
                text += _pptx_shape_texts(_zip_part(z, slide))
        print("\n".join(text))
    except Exception as e:  # OpenHands' own catch-all, same message frame
        print("Error reading PowerPoint file: %s" % e)


# LaTeX: OpenHands uses pylatexenc 2's LatexNodes2Text. No Debian tool gives
# the same text without pulling in pandoc or TeX Live, so this is a small
# standard-library converter for the common subset, following pylatexenc's
# observable output: whitespace kept as written, comments dropped (their
# newline kept), a macro's name and the blanks after it dropped, its known
# arguments formatted as below, unknown macros dropped with their {groups}
# left as text.
_LATEX_MACROS = {
    # name: (number of {arguments}, format of the last one or None to drop)
    "emph": (1, "%s"), "textbf": (1, "%s"), "textit": (1, "%s"), "textrm": (1, "%s"),
    "textsc": (1, "%s"), "textsl": (1, "%s"), "text": (1, "%s"), "underline": (1, "%s"),
    "overline": (1, "%s"), "footnote": (1, "[%s]"), "url": (1, "<%s>"),
    "ref": (1, "<ref>"), "autoref": (1, "<ref>"), "cref": (1, "<ref>"), "Cref": (1, "<Ref>"),
    "eqref": (1, "(<ref>)"), "cite": (1, "<cit.>"), "citet": (1, "<cit.>"), "citep": (1, "<cit.>"),
    "section": (1, "\n\n\u00a7 %S\n"), "subsection": (1, "\n\n \u00a7.\u00a7 %s\n"),
    "subsubsection": (1, "\n\n  \u00a7.\u00a7.\u00a7 %s\n"), "chapter": (1, "\n\nCHAPTER: %S\n"),
    # pylatexenc reads no argument for these two: the {title} stays as text.
    "part": (0, "\n\nPART: \n"), "paragraph": (0, "\n\n  \n"), "subparagraph": (1, "\n\n    %s\n"),
    "vspace": (1, "\n"), "hspace": (1, None), "label": (1, None), "mbox": (1, None),
    "textup": (1, None), "textmd": (1, None), "textsf": (1, None), "texttt": (1, None),
    "input": (1, None), "include": (1, None), "bibliography": (1, None),
    "documentclass": (1, None), "usepackage": (1, None), "setlength": (2, None),
    "newcommand": (2, None), "renewcommand": (2, None), "frac": (2, "%s/%s"),
    "textcolor": (2, "%s"), "href": (2, "%s <%s>"),
    "title": (1, "title"), "author": (1, "author"), "date": (1, "date"),
}
_LATEX_WORDS = {"ldots": "\u2026", "dots": "\u2026", "textbackslash": "\\", "item": "\n  * "}
_LATEX_ESCAPES = {"\\": "\n", " ": " ", ",": " ", ";": " ", ":": " ", "!": "", "%": "%", "&": "&",
                  "#": "#", "$": "$", "_": "_", "{": "{", "}": "}"}
_LATEX_SPECIALS = [("---", "\u2014"), ("--", "\u2013"), ("``", "\u201c"), ("''", "\u201d"), ("~", "\u00a0"), ("&", "   ")]
_LATEX_ENVS = {  # name: ({arguments} after \begin{name} to skip, format)
    "center": (0, "\n%s\n"), "flushleft": (0, "\n%s\n"), "flushright": (0, "\n%s\n"),
    "equation": (0, "\n    %s\n"), "equation*": (0, "\n    %s\n"), "align": (0, "\n    %s\n"),
    "align*": (0, "\n    %s\n"), "gather": (0, "\n    %s\n"), "gather*": (0, "\n    %s\n"),
    "multline": (0, "\n    %s\n"), "multline*": (0, "\n    %s\n"), "eqnarray": (0, "\n    %s\n"),
    "eqnarray*": (0, "\n    %s\n"), "tabular": (1, "%s"), "tabular*": (2, "%s"), "minipage": (1, "%s"),
    "verbatim": (0, ""),
}
# Deeper nesting than this is emitted as plain text: hostile input must not
# exhaust the recursion limit.
_LATEX_MAX_DEPTH = 50


class _Latex:
    def __init__(self, src):
        self.src, self.meta = src, {}

    def opt(self, i):
        """Index after blanks and one [optional] argument at i, if any."""
        j = self.blank(i)
        if j < len(self.src) and self.src[j] == "[":
            k = self.src.find("]", j)
            return i if k < 0 else k + 1
        return i

    def blank(self, i):
        while i < len(self.src) and self.src[i] in " \t\n":
            i += 1
        return i

    def group(self, i):
        """(text inside, index after) of the {group} at i, or (None, i)."""
        s, j = self.src, self.blank(i)
        if j >= len(s) or s[j] != "{":
            return None, i
        depth, k = 0, j
        while k < len(s):
            if s[k] == "\\":
                k += 2
                continue
            if s[k] == "{":
                depth += 1
            elif s[k] == "}":
                depth -= 1
                if depth == 0:
                    return s[j + 1 : k], k + 1
            k += 1
        return s[j + 1 :], len(s)

    def post_space(self, i):
        # Blanks after a macro name go, and one newline, but not a paragraph break.
        s = self.src
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s) and s[i] == "\n" and not s.startswith("\n", self.blank_line_end(i + 1)):
            i += 1
            while i < len(s) and s[i] in " \t":
                i += 1
        return i

    def blank_line_end(self, i):
        while i < len(self.src) and self.src[i] in " \t":
            i += 1
        return i

    def macro(self, name, i, depth):
        """(text, index after) for the macro `name` whose name ends at i."""
        if name in _LATEX_WORDS:
            i = self.post_space(i)
            if name == "item" and self.opt(i) != i:
                j = self.opt(i)
                return "\n  " + self.convert(self.src[self.blank(i) + 1 : j - 1], depth + 1), j
            return _LATEX_WORDS[name], i
        if name == "maketitle":
            m = self.meta
            t, a = m.get("title", "[NO \\title GIVEN]"), m.get("author", "[NO \\author GIVEN]")
            d = m.get("date") or _latex_today()
            bar = "=" * max(len(t), 4 + len(a), 4 + len(d))
            return "%s\n    %s\n    %s\n%s\n\n" % (t, a, d, bar), self.post_space(i)
        if name == "today":
            return _latex_today(), self.post_space(i)
        if name not in _LATEX_MACROS:
            return "", self.post_space(i)
        nargs, fmt = _LATEX_MACROS[name]
        if nargs == 0:
            return fmt, self.post_space(i)
        i = self.opt(self.post_space(i))
        args = []
        for _ in range(nargs):
            text, i = self.group(i)
            if text is None:
                break
            args.append(self.convert(text, depth + 1))
            i = self.opt(i)
        if fmt in ("title", "author", "date"):
            self.meta[fmt] = args[0] if args else ""
            return "", i
        if fmt is None or not args:
            return "", i
        if fmt.count("%") == 2 and len(args) == 2:
            return fmt % (args[1], args[0]) if name == "href" else fmt % (args[0], args[1]), i
        last = args[-1]
        return fmt.replace("%S", last.upper()).replace("%s", last) if "%" in fmt else fmt, i

    def environment(self, i, depth):
        """(text, index after) for \\begin whose name ends at i."""
        name, j = self.group(i)
        if name is None:
            return "", i
        name = name.strip()
        nargs, fmt = _LATEX_ENVS.get(name, (0, "%s"))
        j = self.opt(j)
        for _ in range(nargs):
            _, j = self.group(j)
            j = self.opt(j)
        end = self.src.find("\\end{" + name + "}", j)
        if end < 0:
            end = len(self.src)
        body = self.src[j:end]
        after = min(len(self.src), end + len("\\end{" + name + "}"))
        return (fmt % self.convert(body, depth + 1) if "%s" in fmt else fmt), after

    def convert(self, src, depth=0):
        if depth > _LATEX_MAX_DEPTH:
            return src
        saved, self.src = self.src, src
        try:
            return self._convert(depth)
        finally:
            self.src = saved

    def _convert(self, depth):
        import re

        s, out, i = self.src, [], 0
        name_re = re.compile(r"[A-Za-z]+\*?")
        while i < len(s):
            ch = s[i]
            if ch == "%":
                nl = s.find("\n", i)
                i = len(s) if nl < 0 else nl
                continue
            if ch in "{}$":
                i += 1
                continue
            if ch == "\\":
                m = name_re.match(s, i + 1)
                if m is None:
                    c = s[i + 1 : i + 2]
                    out.append(_LATEX_ESCAPES.get(c, ""))
                    i = self.opt(i + 2) if c == "\\" else i + 2
                    continue
                name, i = m.group().rstrip("*"), m.end()
                if name == "begin":
                    text, i = self.environment(i, depth)
                elif name == "end":
                    _, i = self.group(i)
                    text = ""
                else:
                    text, i = self.macro(name, i, depth)
                out.append(text)
                continue
            for lit, rep in _LATEX_SPECIALS:
                if s.startswith(lit, i):
                    out.append(rep)
                    i += len(lit)
                    break
            else:
                out.append(ch)
                i += 1
        return "".join(out)


def _latex_today():
    import datetime

    d = datetime.date.today()
    return "%s %d, %d" % (d.strftime("%B"), d.day, d.year)


def _latex_to_text(src):
    return _Latex(src).convert(src)


def parse_latex(file_path):
    """Parses the content of a LaTex file and prints it.

    Args:
        file_path: str: The path to the file to open.
    """
    print("[Reading LaTex file from %s]" % file_path)
    if not _readable(file_path):
        return
    try:
        with open(file_path) as f:
            data = f.read()
    except UnicodeDecodeError as e:
        _not_text(file_path, e)
        return
    except OSError as e:
        _error("Cannot read %s: %s" % (file_path, e.strerror or e))
        return
    print(_latex_to_text(data).strip())
