"""Helpers shared by the test suite (importable as ``helpers.*`` from test files in tests/)."""
