"""Operating bpfrun on a schedule: timers, retention, one run at a time, monitoring outputs.

Reads results (bpfrun.result) and report folders (bpfrun.report); the CLI wires it into
`bpfrun run` (`--keep`, `--keep-days`, `--min-free`, `--prom-textfile`, `--format nagios`)
and `bpfrun schedule`.
"""
