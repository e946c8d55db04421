"""The disk cache of unwind tables: a round trip gives the same table, a second read comes
from the cache, a changed file or a damaged entry is built afresh, an unwritable cache
folder only costs the build."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bpfrun.kernel import unwind_cache
from bpfrun.kernel.elf import resolve_library
from bpfrun.kernel.unwind import CFA_RSP, UnwindRule, UnwindTable
from bpfrun.kernel.unwind_cache import cache_dir, cached_table, decode, encode

LIBC = resolve_library("c")


def test_encode_decode_round_trip() -> None:
    table = UnwindTable("x", (UnwindRule(0x10, CFA_RSP, 8), UnwindRule(0x20, CFA_RSP, 48, -16),
                              UnwindRule(0x30)), ((0x1000, 0x1000, 0x500),))
    back = decode(encode(table), "x")
    assert back.rules == table.rules and back.segments == table.segments
    with pytest.raises(ValueError):
        decode(encode(table)[:-1], "x")


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("BPFRUN_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path / "unwind"
    monkeypatch.delenv("BPFRUN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "bpfrun" / "unwind"


@pytest.mark.skipif(LIBC is None, reason="needs the C library")
def test_a_table_is_built_once_then_read(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    assert LIBC is not None
    monkeypatch.setenv("BPFRUN_CACHE_DIR", str(tmp_path / "cache"))
    lib = tmp_path / "libc.so.6"
    shutil.copyfile(LIBC, lib)
    built = cached_table(str(lib))
    entries = list((tmp_path / "cache" / "unwind").iterdir())
    assert len(entries) == 1
    calls: list[str] = []
    monkeypatch.setattr(unwind_cache, "build_table", lambda p: calls.append(p) or built)
    again = cached_table(str(lib))
    assert again.rules == built.rules and again.segments == built.segments and not calls
    os.utime(lib, ns=(0, 0))  # another version of the file: another entry
    cached_table(str(lib))
    assert calls == [str(lib)]
    assert len(list((tmp_path / "cache" / "unwind").iterdir())) == 2
    for entry in (tmp_path / "cache" / "unwind").iterdir():
        entry.write_bytes(b"damaged")
    assert cached_table(str(lib)).rules == built.rules  # built again, not misread
    assert calls == [str(lib)] * 2


@pytest.mark.skipif(LIBC is None, reason="needs the C library")
def test_an_unusable_cache_only_costs_the_build(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    assert LIBC is not None
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BPFRUN_CACHE_DIR", str(blocker))
    assert cached_table(LIBC).rules
