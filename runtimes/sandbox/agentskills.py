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
    """Shared body of open_file/goto_line/scroll_*: count, check, print."""
    try:
        total = _count_lines(path)
        if line_check is not None and not line_check(total):
            return None
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
    global CURRENT_LINE
    if not _have_open_file():
        return
    try:
        total = _count_lines(CURRENT_FILE)
    except UnicodeDecodeError as e:
        _not_text(CURRENT_FILE, e)
        return
    except OSError as e:
        _error("Cannot read %s: %s" % (CURRENT_FILE, e.strerror or e))
        return
    CURRENT_LINE = _clamp(CURRENT_LINE + delta, 1, total)
    out = _show(CURRENT_FILE, CURRENT_LINE, WINDOW, True)
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


# LaTeX: OpenHands uses pylatexenc's LatexNodes2Text. This is a small
# standard-library converter for the common subset (no Debian tool gives the
# same text without pulling in pandoc or TeX Live): preamble and comments
# dropped, formatting macros unwrapped, references and citations as
# pylatexenc writes them, escapes resolved.
_LATEX_DROP_WITH_ARG = {
    "label", "usepackage", "documentclass", "bibliographystyle", "bibliography",
    "vspace", "hspace", "includegraphics", "input", "include", "pagestyle",
    "thispagestyle", "setlength", "newcommand", "renewcommand", "author", "title", "date",
}
_LATEX_REPLACE_ARG = {"ref": "<ref>", "eqref": "<ref>", "cite": "<cit.>", "citep": "<cit.>", "citet": "<cit.>"}
_LATEX_SECTIONS = {"part": "§ ", "chapter": "§ ", "section": "§ ", "subsection": "§.§ ", "subsubsection": "§.§.§ ", "paragraph": "", "subparagraph": ""}
_LATEX_SYMBOLS = {
    "\\": "\n", ",": " ", ";": " ", ":": " ", "!": "", " ": " ", "%": "%", "&": "&", "#": "#",
    "$": "$", "_": "_", "{": "{", "}": "}", "LaTeX": "LaTeX", "TeX": "TeX", "ldots": "…",
    "dots": "…", "item": "\n  * ", "newline": "\n", "par": "\n\n", "maketitle": "", "today": "",
    "noindent": "", "centering": "", "textbackslash": "\\", "S": "§",
}


def _latex_group(s, i):
    """Index after the balanced {...} group starting at s[i] == '{'."""
    depth = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(s)


def _latex_skip_opt(s, i):
    """Skip blanks and one optional [...] argument."""
    j = i
    while j < len(s) and s[j] in " \t":
        j += 1
    if j < len(s) and s[j] == "[":
        k = s.find("]", j)
        return i if k < 0 else k + 1
    return i


def _latex_to_text(src, depth=0):
    # depth bounds the recursion into section titles (hostile input nests them).
    import re

    src = re.sub(r"(?<!\\)%[^\n]*\n?[ \t]*", "", src)
    m = re.search(r"\\begin\s*\{document\}(.*?)(\\end\s*\{document\}|\Z)", src, re.S)
    if m:
        src = m.group(1)
    out, i = [], 0
    while i < len(src):
        ch = src[i]
        if ch in "{}$":
            i += 1
            continue
        if ch == "~":
            out.append(" ")
            i += 1
            continue
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        m = re.compile(r"\\([A-Za-z]+\*?|.)").match(src, i)
        if m is None:
            i += 1
            continue
        name, i = m.group(1).rstrip("*"), m.end()
        if name in ("begin", "end"):
            i = _latex_skip_opt(src, i)
            if i < len(src) and src[i] == "{":
                i = _latex_group(src, i)
            i = _latex_skip_opt(src, i)
            continue
        if name in _LATEX_SYMBOLS:
            out.append(_LATEX_SYMBOLS[name])
            continue
        if name in _LATEX_DROP_WITH_ARG or name in _LATEX_REPLACE_ARG:
            i = _latex_skip_opt(src, i)
            while i < len(src) and src[i] == "{":
                i = _latex_group(src, i)
            out.append(_LATEX_REPLACE_ARG.get(name, ""))
            continue
        if name in _LATEX_SECTIONS and depth < 8:
            i = _latex_skip_opt(src, i)
            if i < len(src) and src[i] == "{":
                end = _latex_group(src, i)
                title = _latex_to_text(src[i + 1 : end - 1], depth + 1).strip()
                out.append("\n\n" + _LATEX_SECTIONS[name] + title + "\n\n")
                i = end
            continue
        # Any other macro: drop its name; its {arguments} stay as text.
    text = "".join(out)
    lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


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
