"""Writes the expected text of each fixture with BrowserGym's own code.

Usage (from this directory):

    git -C /path/to/BrowserGym show HEAD:browsergym/core/src/browsergym/utils/obs.py > /tmp/obs.py
    python3 bg_flatten.py /tmp/obs.py *.json

It loads flatten_axtree_to_str and _process_bid from BrowserGym's obs.py
(nothing else, so numpy, PIL and bs4 are not needed), sets each node's
browsergym_id from the fixture's bids, and calls it with the options
OpenHands' get_axtree_str passes (with_clickable=True, skip_generic=False,
filter_visible_only=False). Output: <name>.txt next to <name>.json.
"""
import ast
import json
import sys

WANTED = {"_process_bid", "_get_coord_str", "flatten_axtree_to_str",
          "IGNORED_AXTREE_ROLES", "IGNORED_AXTREE_PROPERTIES"}


def load(obs_py):
    module = ast.parse(open(obs_py).read())
    body = []
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name in WANTED:
            body.append(node)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in WANTED for t in node.targets):
            body.append(node)
    ns = {"ast": ast}
    exec(compile(ast.Module(body=body, type_ignores=[]), obs_py, "exec"), ns)
    return ns["flatten_axtree_to_str"]


def main():
    flatten = load(sys.argv[1])
    for path in sys.argv[2:]:
        fx = json.load(open(path))
        bids = fx["bids"]
        clickable = set(fx.get("clickable") or [])
        for node in fx["axtree"]["nodes"]:
            bid = bids.get(str(node.get("backendDOMNodeId")))
            if bid is not None:
                node["browsergym_id"] = bid
        extra = {b: {"visibility": 1.0, "bbox": None, "clickable": b in clickable,
                     "set_of_marks": False} for b in bids.values()}
        text = flatten(fx["axtree"], extra_properties=extra, with_clickable=True,
                       skip_generic=False, filter_visible_only=False)
        with open(path[:-len(".json")] + ".txt", "w") as f:
            f.write(text)
        print("wrote", path[:-len(".json")] + ".txt")


if __name__ == "__main__":
    main()
