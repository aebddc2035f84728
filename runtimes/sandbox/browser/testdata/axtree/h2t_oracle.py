"""Writes the expected page text of each fixture with the real html2text.

Usage (from this directory; html2text is pure Python, take its source):

    git -C /path/to/html2text archive HEAD html2text | tar -x -C /tmp/h2t
    echo '__version_tuple__ = (0,)' > /tmp/h2t/html2text/_version.py
    PYTHONPATH=/tmp/h2t python3 h2t_oracle.py *.json

OpenHands feeds html2text BrowserGym's flatten_dom_to_str, i.e. the DOM
printed by BeautifulSoup's prettify(). BeautifulSoup is not installed
here, so this script prints the fixture's DOM (DOM.getDocument) the way
prettify does: every tag and every stripped, non-empty text on a line of
its own, one space of indent per level, no user-agent shadow roots, <pre> and <textarea> contents
as they are, void tags as <br/>, &, < and > as entities. html2text is set
as OpenHands' get_html_text_converter sets it. Output: <name>.page.txt.
"""
import json
import sys

import html2text

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "param", "source", "track", "wbr"}
KEEP = {"pre", "textarea"}


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pretty(node, depth, keep, out, skip_text=False):
    t = node.get("nodeType")
    if t in (9, 11):
        for c in node.get("children", []):
            pretty(c, depth, keep, out, skip_text=(t == 11))
        return
    if t == 3:
        if skip_text:
            return
        if keep:
            out.append(esc(node["nodeValue"]))
        else:
            text = node["nodeValue"].strip()
            if text:
                out.append(" " * depth + esc(text) + "\n")
        return
    if t != 1:
        return
    tag = (node.get("localName") or node["nodeName"]).lower()
    a = node.get("attributes", [])
    attrs = "".join(f' {a[i]}="{esc(a[i + 1])}"' for i in range(0, len(a) - 1, 2))
    indent = "" if keep else " " * depth
    if tag in VOID:
        out.append(f"{indent}<{tag}{attrs}/>" + ("" if keep else "\n"))
        return
    inner_keep = keep or tag in KEEP
    out.append(f"{indent}<{tag}{attrs}>" + ("" if inner_keep else "\n"))
    if tag != "template":
        for s in node.get("shadowRoots", []):
            if s.get("shadowRootType") != "user-agent":
                pretty(s, depth + 1, inner_keep, out)
        for c in node.get("children", []):
            pretty(c, depth + 1, inner_keep, out)
    closing = "" if inner_keep else indent
    out.append(f"{closing}</{tag}>" + ("" if keep else "\n"))


def main():
    for path in sys.argv[1:]:
        fx = json.load(open(path))
        out = []
        pretty(fx["dom"]["root"], 0, False, out)
        h = html2text.HTML2Text()
        h.ignore_links = False
        h.ignore_images = True
        h.images_to_alt = True
        h.body_width = 0
        name = path[: -len(".json")] + ".page.txt"
        with open(name, "w") as f:
            f.write(h.handle("".join(out)))
        print("wrote", name)


if __name__ == "__main__":
    main()
