"""Rich renderings shared by CLI commands and the demo."""

from __future__ import annotations

from rich.console import Console
from rich.tree import Tree

from billbridge.engine.lineage import Lineage


def render_lineage(console: Console, found: Lineage) -> None:
    tree = Tree(f"[bold]lineage of {found.query}[/bold]")
    for event in found.events:
        node = tree.add(f"[cyan]event[/cyan] {event['source']}/{event['event_id']} "
                        f"{event['event_type']} → {event['status']}"
                        + (f" (waiting on {event['waiting_on']})" if event["waiting_on"] else "")
                        + (f", {event['duplicates']} repeat(s) dropped"
                           if event["duplicates"] else ""))
        for record in found.records:
            node.add(f"[green]record[/green] {record['kind']} {record['id']} "
                     f"({record['status']}, config v{record['config_version']})")
        for command in found.commands:
            cmd = node.add(f"[magenta]command[/magenta] #{command['id']} {command['kind']} → "
                           f"{command['target']} [{command['status']}] "
                           f"key {command['idempotency_key']}")
            for attempt in found.attempts:
                if attempt["outbox_id"] == command["id"]:
                    cmd.add(f"attempt {attempt['attempt']}: {attempt['outcome']} "
                            f"{attempt['detail'] or ''}")
            if command["external_id"]:
                cmd.add(f"[bold green]posted[/bold green] as {command['target']} "
                        f"{command['external_id']}")
        for exc in found.exceptions:
            node.add(f"[red]exception[/red] #{exc['id']} {exc['reason']} [{exc['status']}]: "
                     f"{exc['message'][:100]}")
    console.print(tree)
