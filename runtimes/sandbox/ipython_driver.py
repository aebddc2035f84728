# Corral's Python cell driver: a minimal stand-in for a Jupyter kernel.
#
# Protocol (all framing is done by the Go side in ipython.go):
#   requests on fd 3: "<decimal byte length>\n<JSON {"id","code","cwd"}>"
#   output on fd 1 (fd 2 is made the same pipe, so prints, tracebacks and
#   subprocess output stay in order), followed after each cell by the marker
#   "\0<nonce>:done:<id>:<status>\0". The nonce comes from CORRAL_PY_NONCE.
# SIGINT interrupts the running cell only; between cells it is ignored.
import ast
import builtins
import importlib
import importlib.machinery
import json
import linecache
import os
import signal
import subprocess
import sys
import traceback

NONCE = os.environ.pop("CORRAL_PY_NONCE", "")
os.dup2(1, 2)
sys.stderr = sys.stdout
REQ = os.fdopen(3, "rb", buffering=0)

state = {"executing": False}


def on_sigint(signum, frame):
    if state["executing"]:
        raise KeyboardInterrupt


signal.signal(signal.SIGINT, on_sigint)


def marker(kind, *fields):
    sys.stdout.flush()
    text = "\0" + NONCE + ":" + kind + "".join(":" + str(f) for f in fields) + "\0"
    os.write(1, text.encode("utf-8"))


def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = REQ.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_request():
    header = b""
    while not header.endswith(b"\n"):
        c = REQ.read(1)
        if not c:
            return None
        header += c
        if len(header) > 32:
            raise ValueError("bad frame header")
    body = read_exact(int(header))
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))


def _shell(cmd):
    # IPython's "!cmd": run in a shell, output into the cell's output.
    r = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sys.stdout.write(r.stdout.decode("utf-8", "replace"))


def _magic(name, arg):
    if name == "pip":
        _shell(sys.executable + " -m pip " + arg)
    elif name == "cd":
        os.chdir(os.path.expanduser(arg.strip() or "~"))
        print(os.getcwd())
    elif name == "pwd":
        return os.getcwd()
    else:
        print("UsageError: Line magic function `%" + name + "` not found.")


def transform(code):
    # Translate the IPython line syntax agents use most (!cmd, %pip, %cd).
    out = []
    for line in code.split("\n"):
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("!"):
            out.append(indent + "__corral_shell__(" + repr(stripped[1:]) + ")")
        elif stripped.startswith("%") and not stripped.startswith("%%"):
            name, _, arg = stripped[1:].partition(" ")
            out.append(indent + "__corral_magic__(" + repr(name) + ", " + repr(arg) + ")")
        else:
            out.append(line)
    return "\n".join(out)


ns = {"__name__": "__main__", "__builtins__": builtins, "__corral_shell__": _shell, "__corral_magic__": _magic}


class SourceModules:
    """An import hook serving modules whose source ipython.go passed on the
    command line; each is compiled only when first imported."""

    def __init__(self, sources):
        self.sources = sources

    def find_spec(self, name, path=None, target=None):
        if name not in self.sources:
            return None
        return importlib.machinery.ModuleSpec(name, self, origin="<%s>" % name)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        fname = module.__spec__.origin
        src = self.sources[module.__name__]
        linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
        exec(compile(src, fname, "exec"), module.__dict__)


def load_skills():
    # argv after "-c driver" is name/source pairs. agentskills' __all__ goes
    # into the cells' globals, as OpenHands' kernel does with
    # `from ...agentskills import *` at start.
    args = sys.argv[1:]
    del sys.argv[1:]
    if not args:
        return
    # First on the meta path: a project's own agentskills.py must not
    # replace the skills.
    sys.meta_path.insert(0, SourceModules(dict(zip(args[::2], args[1::2]))))
    try:
        mod = importlib.import_module("agentskills")
    except Exception:
        # A broken skills module must not cost the agent its Python cells.
        return
    for name in mod.__all__:
        ns[name] = getattr(mod, name)


def run_cell(code, n):
    fname = "<cell-%d>" % n
    linecache.cache[fname] = (len(code), None, code.splitlines(True), fname)
    tree = ast.parse(transform(code), filename=fname, mode="exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, fname, "exec"), ns)
    if last is not None:
        value = eval(compile(last, fname, "eval"), ns)
        if value is not None:
            ns["_"] = value
            sys.stdout.write(repr(value) + "\n")


def show_error():
    etype, value, tb = sys.exc_info()
    # Drop the driver's own frames: the agent only needs its cell's.
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    sys.stdout.write("".join(traceback.format_exception(etype, value, tb)))


def main():
    load_skills()
    marker("ready", sys.executable)
    n = 0
    while True:
        req = read_request()
        if req is None:
            return
        n += 1
        status = "ok"
        try:
            if req.get("cwd"):
                try:
                    os.chdir(req["cwd"])
                except OSError as e:
                    sys.stdout.write("Could not change directory to %s: %s\n" % (req["cwd"], e))
            state["executing"] = True
            try:
                run_cell(req.get("code", ""), n)
            finally:
                state["executing"] = False
        except KeyboardInterrupt:
            status = "interrupted"
            show_error()
        except BaseException:
            status = "error"
            show_error()
        try:
            marker("done", req.get("id", 0), status)
        except KeyboardInterrupt:
            marker("done", req.get("id", 0), status)


main()
