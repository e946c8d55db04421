"""Frontend: find and load a runbook, YAML with positions, JSON Schema, the typed model, checks
and params. Knows nothing of the machine: everything here works without root or BCC."""
