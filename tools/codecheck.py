"""Static checks on experiment code before it runs: AST rules against network, shells, installs, answers and cheating.

The sandbox contains what an experiment does; these checks say *why* code
should not run at all, in words the proposing role (or a person reading
the blackboard) can act on. They read the syntax tree, not the text, so a
comment that mentions `socket` is not a finding and `__import__("socket")` is.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel

from crew import parse_python as parse

__all__ = ["Finding", "Rule", "check_code", "check_kernel"]

Rule = Literal["syntax", "network", "shell", "install", "answers", "write_outside", "hand_labels", "scorer", "memo"]

_NETWORK_MODULES = {"socket", "ssl", "urllib", "urllib2", "urllib3", "requests", "http", "httpx", "aiohttp", "ftplib",
                    "smtplib", "telnetlib", "poplib", "imaplib", "paramiko", "websocket", "websockets", "xmlrpc",
                    "socketserver", "pycurl", "grpc", "boto3", "botocore"}
_SHELL_MODULES = {"subprocess", "pty", "pexpect", "sh", "plumbum"}
_INSTALL_MODULES = {"pip", "ensurepip", "setuptools.command", "conda"}
_SHELL_CALLS = {"os.system", "os.popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.posix_spawnp", "pty.spawn",
                "os.startfile"}
_SHELL_PREFIXES = ("os.exec", "os.spawn", "subprocess.")
_DYNAMIC = {"eval", "exec", "compile", "__import__", "importlib.import_module"}
_URL = re.compile(r"^\s*(https?|ftp|s3|gs|wss?)://", re.IGNORECASE)
_INSTALL_TEXT = re.compile(r"\b(pip3?|conda|mamba|uv\s+pip|apt(-get)?|easy_install)\s+(install|add)\b")
_ANSWERS_TEXT = re.compile(r"(^|[/\\])(grading|answers?)([/\\.]|$)", re.IGNORECASE)
_WRITERS = {"to_csv", "to_parquet", "to_json", "to_pickle", "to_feather", "to_excel", "to_hdf", "write_csv",
            "write_parquet", "write_text", "write_bytes", "savetxt", "save", "savez", "savez_compressed", "dump",
            "copy", "copy2", "copyfile", "copytree", "move", "rmtree", "remove", "unlink", "rename", "replace",
            "makedirs", "mkdir", "rmdir", "touch", "symlink", "link", "chmod", "chown", "truncate"}
_PREDICTORS = {"predict", "predict_proba", "predict_log_proba", "decision_function", "fit_predict", "inplace_predict"}
_FITTERS = {"fit", "fit_transform", "fit_predict", "train", "partial_fit", "optimize", "cross_val_predict"}
_PREDICTION_FILES = re.compile(r"(^|[/\\])(predictions|submission)\w*\.csv$")
_LITERAL_LABELS = 20


class Finding(BaseModel):
    """One reason code should not run as written; `blocking` findings stop the launch."""

    rule: Rule
    line: int
    message: str
    blocking: bool = True

    def __str__(self) -> str:
        return f"line {self.line}: {self.rule}: {self.message}"


def _dotted(node: ast.AST) -> str:
    """`os.path.join` for an attribute chain, `` for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _strings(node: ast.AST) -> Iterable[tuple[int, str]]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.lineno, sub.value


def _path_text(node: ast.AST | None) -> str | None:
    """The leading text of a path expression: a constant, an f-string's first part, a `Path("/x") / ...`."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    if isinstance(node, ast.BinOp):
        return _path_text(node.left)
    if isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] in ("Path", "join", "PurePath") and node.args:
        return _path_text(node.args[0])
    return None


def _outside(text: str | None, allowed: tuple[str, ...]) -> bool:
    if text is None:
        return False
    if text.startswith(("/", "~")):
        return not any(text == root or text.startswith(root.rstrip("/") + "/") for root in allowed)
    return ".." in re.split(r"[/\\]", text)


class _Visitor(ast.NodeVisitor):
    def __init__(self, forbidden: tuple[str, ...], allowed: tuple[str, ...]):
        self.findings: list[Finding] = []
        self.forbidden = forbidden
        self.allowed = allowed
        self.aliases: dict[str, str] = {}
        self.predicts = False
        self.fits = False
        self.writes_predictions: int | None = None

    def add(self, rule: Rule, node: ast.AST, message: str, blocking: bool = True) -> None:
        self.findings.append(Finding(rule=rule, line=getattr(node, "lineno", 0), message=message, blocking=blocking))

    def _module(self, name: str, node: ast.AST) -> None:
        top = name.split(".")[0]
        if top in _NETWORK_MODULES:
            self.add("network", node, f"imports {name}: experiments run without network; read data from $CREW_DATA")
        elif top in _SHELL_MODULES:
            self.add("shell", node, f"imports {name}: experiments may not start shells or other programs")
        elif name in _INSTALL_MODULES or top in _INSTALL_MODULES:
            self.add("install", node, f"imports {name}: experiments may not install packages; use what is installed")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(alias.name, node)
            self.aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self._module(node.module, node)
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self.generic_visit(node)

    def _resolve(self, dotted: str) -> str:
        head, _, rest = dotted.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def visit_Call(self, node: ast.Call) -> None:
        name = self._resolve(_dotted(node.func))
        attr = name.split(".")[-1] if name else (node.func.attr if isinstance(node.func, ast.Attribute) else "")
        if name in _SHELL_CALLS or name.startswith(_SHELL_PREFIXES):
            self.add("shell", node, f"calls {name}: experiments may not start shells or other programs")
        elif name in _DYNAMIC:
            literal = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if not isinstance(literal, str):
                self.add("shell", node, f"calls {name} on computed text, which can hide any other rule's violation")
            elif name in ("__import__", "importlib.import_module"):
                self._module(literal, node)
            else:
                self._nested(literal, node)
        if attr in _PREDICTORS:
            self.predicts = True
        if attr in _FITTERS:
            self.fits = True
        self._writes(node, name, attr)
        self.generic_visit(node)

    def _nested(self, source: str, node: ast.AST) -> None:
        """Code inside an `exec("...")` string obeys the same rules."""
        try:
            inner = parse(source)
        except SyntaxError:
            self.add("shell", node, "runs a string that is not valid Python")
            return
        for sub in ast.walk(inner):
            if hasattr(sub, "lineno"):
                sub.lineno = node.lineno  # type: ignore[attr-defined]
        self.visit(inner)

    def _writes(self, node: ast.Call, name: str, attr: str) -> None:
        target: ast.AST | None = None
        if name in ("open", "io.open", "builtins.open", "os.open"):
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            mode_text = mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else "r"
            if name == "os.open" or set(mode_text) & set("wax+"):
                target = node.args[0] if node.args else None
        elif attr in _WRITERS:
            keyword = next((k.value for k in node.keywords if k.arg in ("path", "path_or_buf", "file", "fname", "dst")),
                           None)
            receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
            args = node.args[1:] if attr in ("copy", "copy2", "copyfile", "copytree", "move", "rename", "replace",
                                             "dump", "symlink", "link") else node.args[:1]
            target = keyword or (args[0] if args else None)
            path_method = attr in ("write_text", "write_bytes", "touch") or (
                attr in ("mkdir", "unlink", "rmdir", "chmod", "rename", "replace") and not name.startswith("os."))
            if path_method and receiver is not None:  # Path("/x").write_text(...): the path is the receiver
                target = receiver
        text = _path_text(target)
        if text is not None and _PREDICTION_FILES.search(text):
            self.writes_predictions = node.lineno
        if _outside(text, self.allowed):
            self.add("write_outside", node, f"writes to {text!r}: experiments write only inside their working folder")

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            text = node.value
            if _URL.match(text):
                self.add("network", node, f"refers to {text[:60]!r}: experiments run without network")
            if _INSTALL_TEXT.search(text):
                self.add("install", node, f"runs {text[:60]!r}: experiments may not install packages")
            if _ANSWERS_TEXT.search(text) or any(p and p in text for p in self.forbidden):
                self.add("answers", node, f"refers to {text[:60]!r}: the grading answers are off limits")
            if _PREDICTION_FILES.search(text) and self.writes_predictions is None:
                self.writes_predictions = node.lineno

    def visit_List(self, node: ast.List) -> None:
        self._literal(node)
        self.generic_visit(node)

    def visit_Tuple(self, node: ast.Tuple) -> None:
        self._literal(node)
        self.generic_visit(node)

    def _literal(self, node: ast.List | ast.Tuple) -> None:
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        if len(values) == len(node.elts) >= _LITERAL_LABELS:
            kinds = {type(v) for v in values}
            if "pip" in values and "install" in values:
                return
            if len(kinds) == 1 and len(set(values)) <= max(2, len(values) // 4):
                self.add("hand_labels", node, f"a literal of {len(values)} repeated values looks like hand-written "
                         "labels; predictions must come from a fitted model", blocking=False)
        if "pip" in values and "install" in values:
            self.add("install", node, "builds a `pip install` command: experiments may not install packages")


def check_code(code: str, *, forbidden_paths: Iterable[str] = (), allowed_roots: Iterable[str] = ()) -> list[Finding]:
    """Every finding in `code`, in line order; `forbidden_paths` are the answers' locations on this machine."""
    try:
        tree = parse(code)
    except SyntaxError as exc:
        return [Finding(rule="syntax", line=exc.lineno or 0, message=f"does not parse: {exc.msg}")]
    visitor = _Visitor(tuple(str(p) for p in forbidden_paths), tuple(str(p) for p in allowed_roots))
    visitor.visit(tree)
    if visitor.writes_predictions is not None and not (visitor.predicts and visitor.fits):
        missing = "fits no model" if not visitor.fits else "never calls a model's predict"
        visitor.findings.append(Finding(rule="hand_labels", line=visitor.writes_predictions,
                                        message=f"writes predictions but {missing}: predictions must come from a "
                                                "fitted model (MLE-bench's rule against hand-labelling)"))
    return sorted(visitor.findings, key=lambda f: (f.line, f.rule))


_TIMERS = {"time", "perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "process_time", "time_ns"}
_INTROSPECTION = {"sys._getframe", "inspect.currentframe", "inspect.stack", "inspect.getouterframes", "gc.get_objects",
                  "gc.get_referrers", "sys.settrace", "sys.setprofile", "atexit.register"}
_MEMO_DECORATORS = {"cache", "lru_cache", "cached_property", "memoize"}
_SCORER_MODULES = {"time", "sys", "builtins", "numpy", "os", "gc", "importlib", "json", "math"}
"""Modules a scorer times and checks with: a kernel that assigns into them is changing the scorer."""


def check_kernel(code: str, *, scorer: str, forbidden_paths: Iterable[str] = ()) -> list[Finding]:
    """`check_code`'s rules plus a kernel's: leave the scorer, its clock and its callers alone; compute every call.

    A kernel is timed by a scorer that runs in the same process, so the ways
    to cheat are in-process: read the scorer's reference, patch its clock or
    its modules, look up its frames, or remember an answer between calls (the
    scorer gives every call the same values). Each is a blocking finding.
    """
    try:
        tree = parse(code)
    except SyntaxError as exc:
        return [Finding(rule="syntax", line=exc.lineno or 0, message=f"does not parse: {exc.msg}")]
    visitor = _Visitor(tuple(str(p) for p in forbidden_paths), ())
    visitor.visit(tree)  # check_code's rules; a kernel writes no predictions, so hand-labelling does not apply
    findings = [f for f in visitor.findings if f.rule != "hand_labels"]
    aliases = visitor.aliases

    def resolve(node: ast.AST) -> str:
        return visitor._resolve(_dotted(node))

    stem = scorer.rsplit("/", 1)[-1]
    module_names = {stem.removesuffix(".py")}
    found: list[Finding] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and stem in node.value:
            found.append(Finding(rule="scorer", line=line, message=f"refers to the scorer {stem!r}: a kernel computes "
                                                                   "its answer, it never reads the scorer's"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n.split(".")[0] in module_names or n.split(".")[0] == "__main__" for n in names):
                found.append(Finding(rule="scorer", line=line, message="imports the scorer: a kernel may not read "
                                                                       "its reference or its inputs"))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                base = target
                while isinstance(base, (ast.Attribute, ast.Subscript, ast.Call)):
                    base = base.func if isinstance(base, ast.Call) else base.value
                if isinstance(target, (ast.Attribute, ast.Subscript)) and isinstance(base, ast.Name) and \
                        aliases.get(base.id, "").split(".")[0] in _SCORER_MODULES:
                    found.append(Finding(rule="scorer", line=line, message=f"patches {ast.unparse(target)}: a kernel "
                                                                           "may not change the modules the scorer uses"))
        elif isinstance(node, ast.Call):
            name = resolve(node.func)
            if name in _INTROSPECTION or (name in ("setattr", "builtins.setattr") and node.args and \
                    resolve(node.args[0]).split(".")[0] in _SCORER_MODULES):
                found.append(Finding(rule="scorer", line=line, message=f"calls {name}: a kernel may not look into or "
                                                                       "change the scorer's process"))
            elif name.split(".")[-1] in _TIMERS and name.split(".")[0] == "time":
                found.append(Finding(rule="scorer", line=line, blocking=False,
                                     message=f"reads the clock ({name}); the scorer times the kernel, not the kernel"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if _dotted(decorator.func if isinstance(decorator, ast.Call) else decorator).split(".")[-1] \
                        in _MEMO_DECORATORS:
                    found.append(Finding(rule="memo", line=decorator.lineno,
                                         message=f"caches {node.name}'s results: a kernel must compute every call"))
            globals_written = {n for stmt in ast.walk(node) if isinstance(stmt, ast.Global) for n in stmt.names}
            if globals_written:
                found.append(Finding(rule="memo", line=getattr(node, "lineno", 0),
                                     message=f"{node.name} rebinds module state ({', '.join(sorted(globals_written))}) "
                                             "between calls: a kernel must compute every call"))
    module_containers = {t.id for stmt in tree.body if isinstance(stmt, ast.Assign)
                         for t in stmt.targets if isinstance(t, ast.Name)
                         and isinstance(stmt.value, (ast.Dict, ast.List, ast.Set, ast.Call))
                         and (not isinstance(stmt.value, ast.Call) or _dotted(stmt.value.func).split(".")[-1]
                              in ("dict", "list", "set", "OrderedDict", "defaultdict", "WeakValueDictionary"))}
    for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(func):
            stored = (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)) or (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("append", "update", "setdefault", "add", "__setitem__", "extend", "insert"))
            owner = node.value if isinstance(node, ast.Subscript) else getattr(getattr(node, "func", None), "value", None)
            if stored and isinstance(owner, ast.Name) and owner.id in module_containers:
                found.append(Finding(rule="memo", line=getattr(node, "lineno", 0),
                                     message=f"{func.name} stores into the module-level {owner.id}: a kernel must "
                                             "compute every call, not remember answers"))
    return sorted(findings + found, key=lambda f: (f.line, f.rule))
