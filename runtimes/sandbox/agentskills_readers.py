# The document parsers behind agentskills' parse_pdf, parse_docx,
# parse_pptx and parse_latex (their docstrings live there). A separate module
# so that kernels which never parse a document never compile it: the driver
# serves it on first import.
#
# Same rules as agentskills.py: standard library only, heavy imports inside
# functions, shell out to Debian tools where OpenHands uses a PyPI library.
import os

from agentskills import _error, _read_text

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
    # An absolute path: a name starting with "-" must not read as an option.
    r = subprocess.run([tool, "-enc", "UTF-8", os.path.abspath(file_path), "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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

    root = ET.fromstring(xml_bytes)
    if root.tag != _W + "document":
        raise ValueError("its main part is %s, not a Word document" % root.tag)
    body = root.find(_W + "body")
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
    root = ET.fromstring(_zip_part(z, pres))
    if root.tag != _P + "presentation":
        raise ValueError("file is not a PowerPoint file, its main part is %s" % root.tag)
    ids = root.find(_P + "sldIdLst")
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
    print("[Reading LaTex file from %s]" % file_path)
    if not _readable(file_path):
        return
    data = _read_text(file_path)
    if data is not None:
        print(_latex_to_text(data).strip())
