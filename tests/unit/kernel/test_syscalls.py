"""The syscall tables: numbers per architecture without BCC or kernel headers (issue #12.7)."""

from __future__ import annotations

import pytest

from bpfrun.kernel.syscalls import UnknownSyscall, syscall_nr, table


def test_x86_64_numbers_match_the_kernel_abi() -> None:
    assert (syscall_nr("read", "x86_64"), syscall_nr("getpid", "x86_64")) == (0, 39)
    assert (syscall_nr("futex", "x86_64"), syscall_nr("fsync", "x86_64")) == (202, 74)
    assert syscall_nr("epoll_pwait2", "x86_64") == 441


def test_arm64_uses_the_generic_table() -> None:
    assert (syscall_nr("futex", "aarch64"), syscall_nr("fsync", "aarch64")) == (98, 82)
    assert syscall_nr("newfstatat", "aarch64") == 79  # the 64-bit name of __NR3264_fstatat
    assert syscall_nr("mmap", "aarch64") == 222


def test_calls_numbered_alike_everywhere_since_5_1_are_in_every_table() -> None:
    for arch in ("x86_64", "aarch64", "riscv64"):
        assert syscall_nr("futex_wait", arch) == 455
        assert syscall_nr("file_setattr", arch) == 469


def test_a_call_another_architecture_has_is_none_here() -> None:
    assert syscall_nr("poll", "aarch64") is None  # arm64 has only ppoll
    assert syscall_nr("epoll_wait", "aarch64") is None


def test_a_name_no_architecture_has_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(UnknownSyscall, match="did you mean futex"):
        syscall_nr("futx", "x86_64")


def test_an_architecture_without_a_table_knows_no_numbers() -> None:
    assert table("s390x") == {}
    assert syscall_nr("futex", "s390x") is None


def test_numbers_and_names_are_one_to_one() -> None:
    for arch in ("x86_64", "aarch64"):
        numbers = table(arch).values()
        assert len(set(numbers)) == len(numbers), arch
