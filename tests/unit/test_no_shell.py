"""Nothing a runbook, a param or the environment holds can reach a shell (issue #13, point 7).

bpfrun starts programs only with argument lists (`subprocess.Popen([...])`): this test reads
every module of bpfrun/ and fails when one calls a shell — `shell=True`, `os.system`,
`os.popen`, `os.exec*`/`os.spawn*` with a string, `subprocess.*` with a string or f-string
as the command, or `sh -c`/`bash -c` in an argument list.
"""

from __future__ import annotations

import ast
from pathlib import Path

from helpers.paths import REPO

SOURCES = sorted((REPO / "bpfrun").rglob("*.py"))
SUBPROCESS_CALLS = {"Popen", "run", "call", "check_call", "check_output", "getoutput",
                    "getstatusoutput"}
SHELLS = {"sh", "bash", "dash", "zsh", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"}


def _name(func: ast.expr) -> str:
    """`os.system` → "os.system", `Popen` → "Popen"."""
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def _is_text(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) \
        or isinstance(node, ast.JoinedStr)


def _shell_in_argv(node: ast.expr) -> bool:
    if not isinstance(node, ast.List | ast.Tuple) or len(node.elts) < 2:
        return False
    first, second = node.elts[0], node.elts[1]
    return (isinstance(first, ast.Constant) and first.value in SHELLS
            and isinstance(second, ast.Constant) and second.value == "-c")


def shell_calls(source: str) -> list[str]:
    """`line: call` for every call in `source` that runs a shell or a command string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        last = name.rsplit(".", 1)[-1]
        shell = any(k.arg == "shell" and not (isinstance(k.value, ast.Constant)
                                              and k.value.value is False)
                    for k in node.keywords)
        bad = (shell or name in ("os.system", "os.popen")
               or (name.startswith(("os.exec", "os.spawn")) and _shell_in_argv(
                   ast.List(elts=node.args[1:3])))
               or (last in SUBPROCESS_CALLS and node.args
                   and (_is_text(node.args[0]) or _shell_in_argv(node.args[0])))
               or (last in ("getoutput", "getstatusoutput")))
        if bad:
            found.append(f"{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_the_check_catches_each_way_of_calling_a_shell() -> None:
    for line in ("subprocess.run(cmd, shell=True)", "os.system('ls ' + path)",
                 "os.popen(path)", "subprocess.Popen(f'bcc {path}')",
                 "subprocess.check_output(['sh', '-c', text])",
                 "subprocess.getoutput(text)"):
        assert shell_calls(line), line
    for line in ("subprocess.Popen([tool, path])", "subprocess.run(argv, shell=False)",
                 "subprocess.run(['ls', '-c'])"):
        assert not shell_calls(line), line


def test_no_module_of_bpfrun_calls_a_shell() -> None:
    assert SOURCES
    found = [f"{p.relative_to(REPO)}:{hit}" for p in SOURCES
             for hit in shell_calls(p.read_text(encoding="utf-8"))]
    assert not found, "a shell is called (pass an argument list instead):\n" + "\n".join(found)


def test_no_module_of_bpfrun_uses_os_exec_or_spawn_with_a_shell() -> None:
    text = "\n".join(Path(p).read_text(encoding="utf-8") for p in SOURCES)
    for needle in ("os.execl(\"/bin/sh\"", "os.spawnl(", "os.execlp(\"sh\"", "pty.spawn("):
        assert needle not in text, needle
