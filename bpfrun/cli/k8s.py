"""`bpfrun k8s`: a runbook as one Job per Kubernetes node (render), and the nodes' results
taken out of the Jobs' logs (collect).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bpfrun.cli.common import ParamOpt, guarded, load
from bpfrun.errors import UsageError

k8s_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                      help="Kubernetes: a runbook as one Job per node, and their results.")


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
        rb = load(runbook)
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
