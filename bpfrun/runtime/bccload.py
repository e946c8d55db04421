"""The one place that imports BCC: find the real iovisor module, lazily, or explain how to get it.

BCC comes from the OS (python3-bpfcc on Debian/Ubuntu, python3-bcc on Fedora/RHEL), never from
PyPI: the PyPI package named `bcc` is an unrelated library whose top-level `bcc` shadows the real
one. So an import that yields a module without `BPF`, or not sitting next to BCC's `libbcc.py`
ctypes wrapper, is treated as that impostor, and the real package is loaded straight from the
OS's python directories (which also serves interpreters and venvs that do not see them).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from bpfrun.errors import MachineError

_IMPOSTOR_FIX = "pip uninstall bcc (the PyPI package 'bcc' is not iovisor BCC)"


def os_python_dirs() -> list[Path]:
    """Where distributions put python packages for the OS python, for this python's minor."""
    minor = f"python3.{sys.version_info.minor}"
    return [
        Path("/usr/lib/python3/dist-packages"),  # Debian, Ubuntu
        Path(f"/usr/lib/{minor}/site-packages"),  # Fedora, RHEL (pure python)
        Path(f"/usr/lib64/{minor}/site-packages"),  # Fedora, RHEL (arch-specific)
    ]


def is_real_bcc(module: ModuleType) -> bool:
    """True for iovisor BCC: it has `BPF` and its package folder holds the `libbcc.py` wrapper."""
    if not hasattr(module, "BPF"):
        return False
    file = getattr(module, "__file__", None)
    return file is not None and (Path(file).parent / "libbcc.py").is_file()


def install_hint(os_release: Path = Path("/etc/os-release")) -> str:
    """The package to install for BCC's python bindings on this distribution."""
    try:
        text = os_release.read_text(errors="replace")
    except OSError:
        text = ""
    words: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            words.update(value.strip().strip("\"'").split())
    if words & {"debian", "ubuntu"}:
        return "apt install python3-bpfcc"
    if words & {"fedora", "rhel", "centos"}:
        return "dnf install python3-bcc"
    return "install BCC's python bindings: apt install python3-bpfcc / dnf install python3-bcc"


def _forget_bcc() -> None:
    """Drop a (wrong) `bcc` and its submodules so that the next load starts clean."""
    for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
        del sys.modules[name]


def _load_from(directory: Path) -> ModuleType | None:
    """Load `directory/bcc` as the top-level package `bcc`; its submodules then load normally."""
    package = directory / "bcc"
    init = package / "__init__.py"
    if not (init.is_file() and (package / "libbcc.py").is_file()):
        return None
    spec = importlib.util.spec_from_file_location(
        "bcc", init, submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bcc"] = module  # before exec: its relative imports look it up there
    try:
        spec.loader.exec_module(module)
    except Exception:  # e.g. OSError: libbcc.so.0 missing for this copy
        _forget_bcc()
        return None
    if not is_real_bcc(module):
        _forget_bcc()
        return None
    return module


def import_bcc(search_dirs: Sequence[Path] | None = None) -> ModuleType:
    """Return the real iovisor `bcc` module, importing it on first use.

    `search_dirs` replaces the OS python directories tried after a failed normal import (tests).
    Raises MachineError with the install (or uninstall) command when no real BCC can be found.
    """
    loaded = sys.modules.get("bcc")
    if loaded is not None and is_real_bcc(loaded):
        return loaded

    impostor_at: str | None = None
    import_error: str | None = None
    try:
        module = importlib.import_module("bcc")
    except Exception as exc:  # ImportError, or OSError when libbcc.so cannot be loaded
        import_error = f"{type(exc).__name__}: {exc}"
        _forget_bcc()
    else:
        if is_real_bcc(module):
            return module
        impostor_at = getattr(module, "__file__", None) or "a namespace package"
        _forget_bcc()

    for directory in os_python_dirs() if search_dirs is None else search_dirs:
        found = _load_from(directory)
        if found is not None:
            return found

    if impostor_at is not None:
        raise MachineError(
            f"the module 'bcc' found at {impostor_at} is not iovisor BCC, "
            "and no real BCC is installed for the OS python",
            hint=f"{_IMPOSTOR_FIX}; then {install_hint()}",
        )
    raise MachineError(
        f"BCC's python module is not installed ({import_error})",
        hint=install_hint(),
    )


def bcc_status(search_dirs: Sequence[Path] | None = None) -> tuple[bool, str, str | None]:
    """(ok, detail, fix) for `bpfrun doctor`; never raises."""
    try:
        module = import_bcc(search_dirs)
    except MachineError as exc:
        return False, exc.message, exc.hint
    version = getattr(module, "__version__", "(unknown version)")
    where = Path(module.__file__).parent if module.__file__ else "?"
    return True, f"BCC {version} from {where}", None
