"""The command line: parse options, call the library, map outcomes to exit codes.

Thin on purpose: every decision lives in the library. Diagnostics and progress go to stderr,
the product (C, JSON, the report's path) to stdout. Exit codes follow the CLI contract:
0 clean · 1 threshold fired · 2 invalid input · 3 machine cannot run it · 4 a step failed ·
5 another run of the same runbook holds its lock (`run` skipped itself; bpfrun.ops.lock).
`run --format nagios` exits with the plugin convention instead (bpfrun.ops.nagios).
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bpfrun import __version__
from bpfrun.errors import (
    EXIT_INVALID,
    EXIT_MACHINE,
    EXIT_STEP_FAILED,
    BpfrunError,
    UsageError,
    ValidationError,
    shown,
)
from bpfrun.kernel.tracefs import default_kernel

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Declarative eBPF investigations: YAML runbooks compiled to BCC programs.")

ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p", metavar="NAME=VALUE",
                                                   help="Set a runbook param (repeatable).")]
PolicyOpt = Annotated[str | None, typer.Option(
    "--policy", metavar="FILE",
    help="Policy file (default: /etc/bpfrun/policy.yaml if it exists, else the built-in "
         "policy, which refuses exporting read/write buffers).")]
CgroupOpt = Annotated[str | None, typer.Option(
    "--cgroup", metavar="PATH", help="Only tasks in this cgroup v2 or below it (a path "
    "relative to the unified hierarchy, or absolute).")]
UnitOpt = Annotated[str | None, typer.Option(
    "--unit", metavar="NAME.service", help="Only tasks of this systemd unit.")]
ContainerOpt = Annotated[str | None, typer.Option(
    "--container", metavar="ID", help="Only tasks of this container (docker, containerd, "
    "CRI-O or podman id; a prefix is enough).")]
PodOpt = Annotated[str | None, typer.Option(
    "--pod", metavar="NS/NAME|UID", help="Only tasks of this Kubernetes pod's containers.")]


def _target(cgroup: str | None, unit: str | None, container: str | None,
            pod: str | None, rb: Any = None, params: dict[str, Any] | None = None) -> Any:
    """The cgroup filter the options (or the runbook's target param) name, or None."""
    from bpfrun.runtime.session import TargetOptions, cgroup_target  # noqa: PLC0415

    return cgroup_target(TargetOptions(cgroup, unit, container, pod), rb, params)


def safe(text: str) -> str:
    """`text` (newlines and tabs kept) with the control characters that could drive the
    terminal escaped: colours, cursor moves, a changed title, bidi overrides."""
    return shown(text, keep="\n\t")


def err(text: str) -> None:
    print(safe(text), file=sys.stderr, flush=True)


def guarded(fn: Callable[[], int]) -> None:
    """Run a command body; BpfrunErrors become messages and exit codes, never tracebacks."""
    try:
        code = fn()
    except ValidationError as e:
        err(e.render())
        err(f"{len(e.diagnostics)} problem(s) found")
        code = EXIT_INVALID
    except BpfrunError as e:
        err(e.render())
        code = e.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        code = 130
    except BrokenPipeError:  # `bpfrun probes | head`: the reader has had enough
        sys.stderr.close()
        code = 0
    except Exception as e:  # a bug of bpfrun's, not the user's: say so, briefly
        err(f"bpfrun: internal error: {type(e).__name__}: {e}\n"
            "  this is a bug in bpfrun; please report it with the runbook and command line")
        code = EXIT_STEP_FAILED
    raise typer.Exit(code)


def _load(runbook: str) -> Any:
    from bpfrun.frontend.runbooks import find_runbook, load_runbook  # noqa: PLC0415 fast --help

    return load_runbook(find_runbook(runbook))


@app.command("list")
def list_cmd() -> None:
    """Shipped runbooks: name, title and params."""
    def body() -> int:
        from bpfrun.frontend.runbooks import load_runbook, shipped_runbooks  # noqa: PLC0415

        for path in shipped_runbooks():
            rb = load_runbook(path)
            params = " ".join(f"{p.name}={p.default if p.has_default else '<' + p.type + '>'}"
                              for p in rb.params)
            print(f"{rb.name:<16} {rb.title}")
            if params:
                print(f"{'':<16} params: {params}")
        return 0
    guarded(body)


@app.command()
def validate(paths: Annotated[list[str], typer.Argument(
        help="Runbook files, folders or names of shipped runbooks.")],
        policy: PolicyOpt = None) -> None:
    """Check runbooks (schema, names, types against this kernel when readable, the policy).
    No root."""
    def body() -> int:  # plain strings: typer's Path would stop at the first unreadable one
        from bpfrun.frontend.policy import find_policy  # noqa: PLC0415

        kernel = default_kernel()
        rules = find_policy(policy)
        failed = total = 0
        for p in paths:
            for f in _runbook_files(Path(p)):
                total += 1
                failed += 0 if _validate_file(f, kernel, rules) else 1
        if failed:
            err(f"{failed} of {total} runbook(s) invalid")
        return EXIT_INVALID if failed else 0
    guarded(body)


def _runbook_files(p: Path) -> list[Path]:
    """The runbooks `p` names: the runbooks of a folder, else [p] whatever it is (a file, a
    shipped runbook's name, nothing): _validate_file says what is wrong with it, and the
    other paths are still checked."""
    if _kind(p) == "folder" and p.suffix not in (".yaml", ".yml"):
        return sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml"))
    return [p]


def _kind(p: Path) -> str:
    """"folder", "missing" or "other"; a path that cannot be looked at (a folder on the way
    is closed to this user) is "other", so that reading it says why."""
    try:
        return "folder" if stat.S_ISDIR(p.stat().st_mode) else "other"
    except FileNotFoundError:
        return "missing" if not p.is_symlink() else "other"
    except OSError:
        return "other"


def _validate_file(f: Path, kernel: Any, policy: Any) -> bool:
    """Check one runbook file through every stage, printing its problems; True when ok."""
    from bpfrun.compile.pipeline import check_against_kernel  # noqa: PLC0415
    from bpfrun.compile.policy_check import check_runbook_policy  # noqa: PLC0415
    from bpfrun.frontend.durations import step_duration_problems  # noqa: PLC0415
    from bpfrun.frontend.params import placeholder_params  # noqa: PLC0415
    from bpfrun.frontend.runbooks import check_file, clean_steps, find_runbook  # noqa: PLC0415

    if _kind(f) == "missing":
        if f.suffix in (".yaml", ".yml") or len(f.parts) > 1:
            err(f"{f}: error: no such file or folder")
            return False
        try:  # meant as a shipped runbook's name: its error says which there are
            f = find_runbook(str(f))
        except UsageError as e:
            err(e.render())
            return False
    try:
        checked = check_file(f)
    except BpfrunError as e:  # invalid YAML, or no runbook text at all
        err(e.render())
        return False
    problems, notes = list(checked.problems), []
    rb = checked.runbook
    if rb is not None:
        params = placeholder_params(rb)  # for params without a default: every check runs
        clean = clean_steps(checked)
        problems += step_duration_problems(rb, params, clean)
        try:
            notes = check_against_kernel(rb, params, kernel, near_misses=True, only=clean)
            if not problems:  # the policy reads compiled facts: only of a sound runbook
                check_runbook_policy(policy, rb, params, kernel)
        except ValidationError as e:
            problems += [d for d in e.diagnostics if d not in problems]
    if problems:
        err(ValidationError(diagnostics=problems, sources=checked.sources).render())
        return False
    print(safe(f"{f}: ok"))
    for n in dict.fromkeys(notes):
        err(f"{f}: note: {n}")
    return True


@app.command("compile")
def compile_cmd(runbook: str, param: ParamOpt = None,
                step: Annotated[str | None, typer.Option(help="Only this step.")] = None,
                policy: PolicyOpt = None, cgroup: CgroupOpt = None, unit: UnitOpt = None,
                container: ContainerOpt = None, pod: PodOpt = None) -> None:
    """Print the BCC C of each step, after what the runbook reads and costs. No root, no BCC
    needed."""
    def body() -> int:
        from bpfrun.compile.cexpr import NullInput  # noqa: PLC0415
        from bpfrun.compile.explain import explain_runbook  # noqa: PLC0415
        from bpfrun.compile.explain_text import c_comment  # noqa: PLC0415
        from bpfrun.compile.pipeline import compile_step, placeholder_values  # noqa: PLC0415
        from bpfrun.compile.policy_check import check_runbook_policy  # noqa: PLC0415
        from bpfrun.frontend.params import parse_assignments, resolve_params  # noqa: PLC0415
        from bpfrun.frontend.policy import find_policy  # noqa: PLC0415

        rb = _load(runbook)
        params = resolve_params(rb, parse_assignments(param or []))
        target = _target(cgroup, unit, container, pod, rb, params)
        kernel = default_kernel()
        if not kernel.readable():
            err("note: tracefs is not readable: tracepoint fields and types were not checked")
        if target is not None:
            err(f"note: aimed at {target.label} (cgroup id {target.id})")
        steps = [s for s in rb.steps if step is None or s.id == step]
        if not steps:
            raise UsageError(f"no step '{step}' in {rb.name}",
                             "steps: " + ", ".join(s.id for s in rb.steps))
        expl = explain_runbook(rb, params, kernel, only={s.id for s in steps})
        check_runbook_policy(find_policy(policy), rb, params, kernel, explanation=expl)
        print(c_comment(expl))
        for s in steps:
            try:
                compiled = compile_step(rb, s, params, placeholder_values(rb, s), kernel,
                                        require_probes=False, target=target)
                for note in compiled.program.unchecked:
                    err(f"note: step {s.id}: {note}")
            except NullInput as e:
                print(f"/* step {s.id}: needs {e.name}, known only at run time */\n")
                continue
            print(compiled.c_text)
        return 0
    guarded(body)


@app.command()
def explain(runbook: str, param: ParamOpt = None, policy: PolicyOpt = None,
            cgroup: CgroupOpt = None, unit: UnitOpt = None, container: ContainerOpt = None,
            pod: PodOpt = None) -> None:
    """What a runbook attaches to, reads, exports and costs, probe by probe, and whether the
    policy lets it run (its violations are listed; the exit code is still 0). No root."""
    def body() -> int:
        from bpfrun.compile.explain import explain_runbook  # noqa: PLC0415
        from bpfrun.compile.explain_text import text  # noqa: PLC0415
        from bpfrun.compile.policy_check import check_runbook_policy  # noqa: PLC0415
        from bpfrun.frontend.params import (  # noqa: PLC0415
            check_value,
            parse_assignments,
            placeholder_params,
        )
        from bpfrun.frontend.policy import find_policy  # noqa: PLC0415

        rb = _load(runbook)
        params = placeholder_params(rb)  # a param without a default is not needed here
        for name, raw in parse_assignments(param or []).items():
            p = rb.param(name)
            try:
                if p is None:
                    raise ValueError(f"no such param in {rb.name}")
                params[name] = check_value(p, raw)
            except ValueError as e:
                raise UsageError(f"param '{name}': {e}") from None
        target = _target(cgroup, unit, container, pod, rb, params)
        kernel = default_kernel()
        rules = find_policy(policy)
        expl = explain_runbook(rb, params, kernel)
        if target is not None and target.level > 0:
            print(safe(f"Target: {target.label} (cgroup id {target.id}): every probe returns at "
                       "once for tasks outside it, before its `where`.\n"))
        print(safe(text(expl)))
        try:
            check_runbook_policy(rules, rb, params, kernel, explanation=expl)
            print(f"Policy ({rules.source}): allows it.")
        except ValidationError as e:
            print(f"Policy ({rules.source}): refuses it ({len(e.diagnostics)} violation(s)):")
            print(safe(e.render()))
        return 0
    guarded(body)


@app.command()
def run(runbook: str, param: ParamOpt = None,
        duration: Annotated[str | None, typer.Option(help="Override every step's duration.")]
        = None,
        out: Annotated[Path | None, typer.Option("-o", "--out", help="Report folder.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="result.json on stdout.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
        formats: Annotated[str, typer.Option(
            "--format", "-f", metavar="LIST",
            help="Reports to write: md,html,json (result.json is always written); or nagios: "
                 "all three, and one plugin status line on stdout, exit 0 OK, 1 WARNING, "
                 "2 CRITICAL, 3 UNKNOWN.")]
        = "md,html,json",
        policy: PolicyOpt = None,
        keep: Annotated[int | None, typer.Option(
            "--keep", metavar="N",
            help="After the run, remove this runbook's oldest complete reports but the newest "
                 "N (default with BPFRUN_SCHEDULED=1: 96).")] = None,
        keep_days: Annotated[str | None, typer.Option(
            "--keep-days", metavar="D",
            help="After the run, remove this runbook's complete reports older than D days.")]
        = None,
        min_free: Annotated[str, typer.Option(
            "--min-free", metavar="SIZE",
            help="Refuse to start (exit 3) when the reports' file system has less free; "
                 "0: no floor.")] = "256MiB",
        prom_textfile: Annotated[Path | None, typer.Option(
            "--prom-textfile", metavar="DIR",
            help="Write bpfrun_<runbook>.prom there for node_exporter's textfile "
                 "collector.")] = None,
        report_mode: Annotated[str, typer.Option(
            "--report-mode", metavar="OCTAL",
            help="Mode of the report's files, e.g. 0640 to share them with the folder's "
                 "group (its folder gets the matching x bits). Default 0600: only you.")]
        = "0600",
        baseline: Annotated[str | None, typer.Option(
            "--baseline", metavar="RUN",
            help="Compare with an earlier run of this runbook (a report folder, a result.json, "
                 "latest or latest~N) and judge the runbook's regression gates.")] = None,
        max_overhead: Annotated[float | None, typer.Option(
            "--max-overhead", metavar="PERCENT",
            help="Stop a step whose BPF programs take more than PERCENT of all CPUs "
                 "(measured each second; default: the policy's max_overhead, else 5; "
                 "0: no limit). A stopped step keeps its data and adds a warning (exit 1).")]
        = None,
        cgroup: CgroupOpt = None, unit: UnitOpt = None, container: ContainerOpt = None,
        pod: PodOpt = None,
        ) -> None:
    """Run a runbook (root): write report.md, report.html and result.json; print the path."""
    def body() -> int:
        from bpfrun.report.writers import render_json  # noqa: PLC0415
        from bpfrun.runtime.progress import Progress  # noqa: PLC0415
        from bpfrun.runtime.session import RunRequest, TargetOptions, run_session  # noqa: PLC0415

        request = RunRequest(
            runbook, param or [], duration, out, _report_formats(formats), policy, keep,
            keep_days, min_free, prom_textfile, report_mode, baseline, max_overhead,
            TargetOptions(cgroup, unit, container, pod))
        outcome = run_session(request, Progress.for_cli(quiet=quiet, json_output=as_json), err)
        result = outcome.result
        if _report_formats(formats) != formats:  # --format nagios
            from bpfrun.ops.nagios import nagios_output  # noqa: PLC0415

            state, line = nagios_output(result)
            print(safe(line))
            return state
        if as_json:
            sys.stdout.write(render_json(result))
        else:
            print(outcome.written.get("md") or outcome.written.get("html")
                  or outcome.written["json"])
        if result.error and not quiet:
            err(f"bpfrun: {result.error}")
        return result.exit_code
    guarded(_run_outcome(body, runbook, formats.strip() == "nagios", prom_textfile))


def _report_formats(formats: str) -> str:
    """`--format nagios` writes every report: the line on stdout is for the check."""
    return "md,html,json" if formats.strip() == "nagios" else formats


def _run_outcome(body: Callable[[], int], runbook: str, nagios: bool,
                 prom: Path | None) -> Callable[[], int]:
    """`body` whose refusals (invalid, machine, already running) still reach monitoring: the
    Prometheus file says the run errored (not for an overlap: the running one will write),
    and a Nagios check gets an UNKNOWN line with exit 3 instead of bpfrun's code."""
    def outcome() -> int:
        from bpfrun.ops.lock import AlreadyRunning  # noqa: PLC0415

        try:
            return body()
        except BpfrunError as e:
            if prom is not None and not isinstance(e, AlreadyRunning):
                from bpfrun.ops.prometheus import write_textfile  # noqa: PLC0415

                write_textfile(prom, _runbook_name(runbook), e.exit_code, None, datetime.now(UTC))
            if not nagios:
                raise
            from bpfrun.ops.nagios import nagios_unknown  # noqa: PLC0415

            err(e.render())
            state, line = nagios_unknown(_runbook_name(runbook), e.render().splitlines()[0])
            print(safe(line))
            return state
    return outcome


def _runbook_name(ref: str) -> str:
    """The runbook's name, or the file's stem when it cannot be loaded."""
    try:
        return str(_load(ref).name)
    except BpfrunError:
        return Path(ref).stem or ref


@app.command()
def diff(before: Annotated[str, typer.Argument(
             metavar="BEFORE",
             help="The earlier run: a report folder, a result.json, latest or latest~N.")],
         after: Annotated[str, typer.Argument(metavar="AFTER",
                                              help="The later run, the same way.")],
         out: Annotated[Path | None, typer.Option("-o", "--out", help="Report folder.")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="diff.json on stdout.")] = False,
         formats: Annotated[str, typer.Option(
             "--format", "-f", metavar="LIST",
             help="Reports to write: md,html,json (diff.json is always written).")]
         = "md,html,json") -> None:
    """Compare two runs of one runbook: what changed most, a differential flame graph, which
    thresholds stopped or started firing. Writes report.md, report.html and diff.json."""
    def body() -> int:
        from bpfrun.diff import (  # noqa: PLC0415
            compare_runs,
            folded_stacks,
            load_run,
            render_diff_json,
            resolve_run,
            source_name,
            write_diff,
        )
        from bpfrun.report.reportdir import default_report_dir  # noqa: PLC0415
        from bpfrun.report.writers import parse_formats  # noqa: PLC0415

        chosen = parse_formats(formats)
        paths = [resolve_run(before), resolve_run(after)]
        runs = [load_run(p) for p in paths]
        stacks = (folded_stacks(paths[0], runs[0]), folded_stacks(paths[1], runs[1]))
        compared = compare_runs(runs[0], runs[1], source_name(paths[0]),
                                source_name(paths[1]), stacks)
        for warning in compared.warnings:
            err(f"warning: {warning}")
        folder = out or default_report_dir(f"diff-{compared.runbook}")
        written = write_diff(folder, compared, chosen)
        if as_json:
            sys.stdout.write(render_diff_json(compared))
        else:
            print(written.get("md") or written.get("html") or written["json"])
        return 0
    guarded(body)


@app.command()
def merge(results: Annotated[list[str], typer.Argument(
              metavar="RESULT...",
              help="result.json files, report folders, or folders of them (Ansible's fetch "
                   "tree results/<host>/result.json).")],
          out: Annotated[Path | None, typer.Option("-o", "--out", help="Report folder.")]
          = None,
          inventory: Annotated[Path | None, typer.Option(
              "--inventory", "-i", metavar="FILE",
              help="The hosts expected: one per line, or an Ansible INI inventory.")] = None,
          min_coverage: Annotated[float, typer.Option(
              "--min-coverage", min=0.0, max=1.0,
              help="Exit 3 when fewer of the expected hosts ran (0-1).")] = 1.0,
          formats: Annotated[str, typer.Option(
              "--format", "-f", metavar="LIST",
              help="Reports to write: md,html,json (result.json is always written).")]
          = "md,html,json") -> None:
    """Merge one runbook's results from many hosts into one fleet report: coverage, hosts worst
    first, merged counts, histograms and flame graphs, outlier hosts. Exits with the worst
    host's code, or 3 when coverage is below --min-coverage."""
    def body() -> int:
        from bpfrun.fleet import (  # noqa: PLC0415
            load_hosts,
            merge_hosts,
            read_inventory,
            write_fleet,
        )
        from bpfrun.report.reportdir import default_report_dir  # noqa: PLC0415
        from bpfrun.report.writers import parse_formats  # noqa: PLC0415

        chosen = parse_formats(formats)
        expected = read_inventory(inventory) if inventory is not None else None
        fleet = merge_hosts(load_hosts(results), expected, min_coverage)
        folder = out or default_report_dir(f"fleet-{fleet.result.runbook.name}")
        written = write_fleet(folder, fleet, chosen)
        print(written.get("md") or written.get("html") or written["json"])
        return fleet.result.exit_code
    guarded(body)


k8s_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                      help="Kubernetes: a runbook as one Job per node, and their results.")
app.add_typer(k8s_app, name="k8s")


@k8s_app.command("render")
def k8s_render(runbook: str, param: ParamOpt = None,
               node: Annotated[list[str] | None, typer.Option(
                   "--node", metavar="NAME", help="A node to run on (repeatable).")] = None,
               all_nodes: Annotated[bool, typer.Option(
                   "--all-nodes", help="Every node kubectl lists.")] = False,
               duration: Annotated[str | None, typer.Option(
                   "--duration", help="Override every step's duration.")] = None,
               image: Annotated[str, typer.Option(
                   help="The bpfrun image (contrib/container/Containerfile).")]
               = "bpfrun:latest",
               namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
               out: Annotated[Path | None, typer.Option(
                   "-o", "--out", help="Write the manifests here, not to stdout.")] = None
               ) -> None:
    """Manifests that run RUNBOOK once on each node: a ConfigMap with it and one privileged
    Job per node, which prints result.json to its log for `bpfrun k8s collect`."""
    def body() -> int:
        from bpfrun.fleet.k8s import (  # noqa: PLC0415
            cluster_nodes,
            manifests_text,
            render_manifests,
            run_seconds,
        )
        from bpfrun.frontend.params import parse_assignments, resolve_params  # noqa: PLC0415
        from bpfrun.frontend.runbooks import find_runbook  # noqa: PLC0415
        from bpfrun.units import parse_duration  # noqa: PLC0415

        if bool(node) == all_nodes:
            raise UsageError("give --node NAME (repeatable) or --all-nodes")
        path = find_runbook(runbook)
        rb = _load(runbook)
        given = parse_assignments(param or [])
        params = resolve_params(rb, given)
        override = parse_duration(duration) if duration else None
        docs = render_manifests(rb.name, path.read_text(encoding="utf-8"),
                                cluster_nodes() if all_nodes else node or [],
                                run_seconds(rb, params, override), given, duration, image,
                                namespace)
        text = manifests_text(docs)
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
        return 0
    guarded(body)


@k8s_app.command("collect")
def k8s_collect(logs: Annotated[list[Path] | None, typer.Argument(
                    metavar="[LOG]...",
                    help="Saved `kubectl logs` output of the Jobs; none: ask kubectl.")] = None,
                out: Annotated[Path, typer.Option(
                    "-o", "--out", help="Folder for <node>/result.json.")] = Path("results"),
                runbook: Annotated[str | None, typer.Option(
                    help="With kubectl: only this runbook's Jobs.")] = None,
                namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default"
                ) -> None:
    """Take each node's result.json out of the Jobs' logs, as `bpfrun merge` reads them."""
    def body() -> int:
        from bpfrun.fleet.k8s import collect_results, kubectl_logs  # noqa: PLC0415

        texts = [] if logs else [kubectl_logs(namespace, runbook)]
        for log in logs or []:
            try:
                texts.append(log.read_text(encoding="utf-8", errors="replace"))
            except OSError as e:
                raise UsageError(f"{log}: cannot read it: {e.strerror or e}") from e
        for path in collect_results(texts, out):
            print(path)
        return 0
    guarded(body)


@app.command("test")
def test_cmd(runbooks: Annotated[list[str], typer.Argument(
                 help="Runbook files, folders of runbooks, or shipped runbook names.")],
             out: Annotated[Path | None, typer.Option(
                 "-o", "--out", help="Keep each report in DIR/<runbook name>.")] = None,
             quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
             policy: PolicyOpt = None) -> None:
    """Run runbooks' self-tests (root): start each workload, run, check `expect`."""
    def body() -> int:
        from bpfrun.frontend.policy import find_policy  # noqa: PLC0415
        from bpfrun.runtime.progress import Progress  # noqa: PLC0415
        from bpfrun.runtime.selftest import (  # noqa: PLC0415
            collect,
            exit_code,
            render_result,
            run_selftest,
            summary,
        )

        progress = Progress(quiet=quiet)
        rules = find_policy(policy)
        results, invalid = [], 0
        for path in collect(runbooks):
            try:
                _check_policy(path, rules)
                res = run_selftest(path, out, progress)
            except (ValidationError, UsageError) as e:  # MachineError: exit 3 at once
                err(e.render())
                print(f"INVALID {path}", flush=True)
                invalid += 1
                continue
            print(render_result(res), flush=True)
            results.append(res)
        print(summary(results, invalid))
        return exit_code(results, invalid)
    guarded(body)


def _check_policy(path: Path, policy: Any) -> None:
    """The policy on one runbook, with its params' defaults (placeholders where none)."""
    from bpfrun.compile.policy_check import check_runbook_policy  # noqa: PLC0415
    from bpfrun.frontend.params import placeholder_params  # noqa: PLC0415
    from bpfrun.frontend.runbooks import load_runbook  # noqa: PLC0415

    rb = load_runbook(path)
    check_runbook_policy(policy, rb, placeholder_params(rb), default_kernel())


@app.command()
def doctor() -> None:
    """Can this machine run BPF, and what to do if not."""
    def body() -> int:
        from bpfrun.runtime.doctor import failures, render_checks, run_checks  # noqa: PLC0415

        checks = run_checks()
        print(render_checks(checks))
        return EXIT_MACHINE if failures(checks) else 0
    guarded(body)


@app.command()
def probes(pattern: Annotated[str | None, typer.Argument(help="Glob, e.g. 'sched:*'.")] = None,
           verbose: Annotated[bool, typer.Option("-v", "--verbose",
                                                 help="Fields and types.")] = False,
           binary: Annotated[str | None, typer.Option("--binary", "-b",
                                                      help="List uprobes of this binary.")]
           = None) -> None:
    """Probes this kernel offers (tracepoints, raw tracepoints, kprobes, uprobes)."""
    def body() -> int:
        from bpfrun.kernel.probes import list_probes  # noqa: PLC0415

        for line in list_probes(default_kernel(), pattern, verbose, binary):
            print(line)
        return 0
    guarded(body)


schedule_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="Run runbooks on a timer: systemd units, or a cron line.")
app.add_typer(schedule_app, name="schedule")
RootOpt = Annotated[Path | None, typer.Option(
    "--root", metavar="DIR", help="Units folder (default /etc/systemd/system).")]


@schedule_app.command("install")
def schedule_install(runbook: str, every: Annotated[str, typer.Option(
                         "--every", metavar="PERIOD", help="e.g. 5m, 15m, 1h, 24h.")],
                     param: ParamOpt = None, root: RootOpt = None,
                     keep: Annotated[int | None, typer.Option("--keep", metavar="N")] = None,
                     prom_textfile: Annotated[Path | None, typer.Option(
                         "--prom-textfile", metavar="DIR")] = None,
                     init: Annotated[str, typer.Option(
                         "--init", metavar="auto|systemd|cron",
                         help="auto: systemd units when systemd runs, else the cron line.")]
                     = "auto") -> None:
    """Write a systemd service and timer running RUNBOOK every PERIOD (scheduled: quiet,
    BPFRUN_SCHEDULED=1, low priority, hardened), or print the /etc/cron.d line."""
    def body() -> int:
        from bpfrun.frontend.params import parse_assignments, resolve_params  # noqa: PLC0415
        from bpfrun.ops import schedule as sched  # noqa: PLC0415
        from bpfrun.ops.runops import build_schedule  # noqa: PLC0415

        if init not in ("auto", "systemd", "cron"):
            raise UsageError(f"--init {init!r}: one of auto, systemd, cron")
        rb = _load(runbook)
        params = resolve_params(rb, parse_assignments(param or []))  # a bad one exits 2 now
        is_file = Path(runbook).suffix in (".yaml", ".yml") or "/" in runbook
        ref = str(Path(runbook).resolve()) if is_file else runbook  # a timer has no cwd
        prom = [str(prom_textfile.resolve())] if prom_textfile else []
        extra = [*(["--keep", str(keep)] if keep else []),
                 *(["--prom-textfile", *prom] if prom else [])]
        s = build_schedule(rb, ref, params, param or [], every, _bpfrun_command(), extra,
                           prom)
        if init == "cron" or (init == "auto" and not sched.systemd_running()):
            err("systemd is not running here: add this line to /etc/cron.d/bpfrun")
            print(sched.cron_line(s))
            return 0
        for path in sched.install(s, root or sched.DEFAULT_UNIT_ROOT):
            print(path)
        err(f"enable it: systemctl daemon-reload && systemctl enable --now {s.unit}.timer")
        return 0
    guarded(body)


@schedule_app.command("list")
def schedule_list(root: RootOpt = None) -> None:
    """The schedules bpfrun installed: runbook, calendar, command."""
    def body() -> int:
        from bpfrun.ops import schedule as sched  # noqa: PLC0415

        for s in sched.listing(root or sched.DEFAULT_UNIT_ROOT):
            print(safe(f"{s.runbook:<16} {s.calendar:<22} {s.command}"))
        return 0
    guarded(body)


@schedule_app.command("remove")
def schedule_remove(runbook: str, root: RootOpt = None) -> None:
    """Delete a runbook's service and timer (disable the timer first)."""
    def body() -> int:
        from bpfrun.ops import schedule as sched  # noqa: PLC0415

        for path in sched.remove(runbook, root or sched.DEFAULT_UNIT_ROOT):
            print(path)
        err(f"then: systemctl disable --now {sched.unit_name(runbook)}.timer; "
            "systemctl daemon-reload")
        return 0
    guarded(body)


def _bpfrun_command() -> list[str]:
    """How a timer starts this bpfrun: its script when run as one, else this Python."""
    import shutil  # noqa: PLC0415

    script = Path(sys.argv[0])
    if script.name == "bpfrun" and script.exists():
        return [str(script.resolve())]
    found = shutil.which("bpfrun")
    return [found] if found else [sys.executable, "-m", "bpfrun"]


@app.command()
def version() -> None:
    """Print bpfrun's version."""
    print(__version__)


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `bpfrun compile x | head`
        sys.stderr.close()


__all__ = ["app", "main"]
