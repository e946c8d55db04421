"""Compile one step of a checked runbook: the program IR (`program.py`, the one contract with
the runtime), lowering by construct, C expressions and functions, and emit through templates."""
