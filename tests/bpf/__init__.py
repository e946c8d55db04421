"""Tests that load real BPF programs. A package so that its conftest.py is `bpf.conftest`, not a
second top-level `conftest` that would shadow tests/conftest.py for `import conftest`."""
