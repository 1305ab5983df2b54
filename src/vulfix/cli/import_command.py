"""`vulfix import`: load hosts, vulnerabilities and findings from an inventory document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import IO, Any

import click

from vulfix.cli.database_options import database_only_options, settings_from, with_engine
from vulfix.inventory.errors import InvalidDocumentError
from vulfix.inventory.records import ImportSummary
from vulfix.inventory.validation import load_inventory
from vulfix.store.inventory_repository import InventoryStore


def summary_fields(account: str, summary: ImportSummary) -> dict[str, Any]:
    return {
        "Account": account,
        "Hosts": {"Inserted": summary.hosts_inserted, "Updated": summary.hosts_updated},
        "Vulnerabilities": {
            "Inserted": summary.vulnerabilities_inserted,
            "Updated": summary.vulnerabilities_updated,
        },
        "KbPatches": summary.kb_patches,
        "Findings": {
            "Inserted": summary.findings_inserted,
            "Updated": summary.findings_updated,
            "Kept": summary.findings_kept,
        },
    }


@click.command("import")
@click.argument("document", metavar="FILE.json", type=click.File("rb"))
@database_only_options
@click.option("--account", required=True, help="Account the inventory belongs to; created if new.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def import_command(
    document: IO[bytes], db: str | None, config_file: str | None, account: str, as_json: bool
) -> None:
    """Import FILE.json ("-" reads standard input) into ACCOUNT, all or nothing.

    Hosts and vulnerabilities already imported are updated; see docs/inventory-format.md.
    """
    settings = settings_from(config_file, db, None)
    name = getattr(document, "name", "-")
    try:
        inventory = load_inventory(document.read())
        summary = with_engine(
            settings,
            lambda engine: InventoryStore(engine).import_document(
                account, inventory, datetime.now(UTC)
            ),
        )
    except InvalidDocumentError as error:
        problems = "\n".join(f"  {line}" for line in str(error).splitlines())
        raise click.ClickException(f"{name} was not imported:\n{problems}") from error
    if as_json:
        click.echo(json.dumps(summary_fields(account, summary)))
        return
    click.echo(f"Imported {name} into account {account}:")
    click.echo(f"  hosts:           {summary.hosts_inserted} new, {summary.hosts_updated} updated")
    click.echo(
        f"  vulnerabilities: {summary.vulnerabilities_inserted} new, "
        f"{summary.vulnerabilities_updated} updated ({summary.kb_patches} KB patches)"
    )
    click.echo(
        f"  findings:        {summary.findings_inserted} new, {summary.findings_updated} updated, "
        f"{summary.findings_kept} kept (fixing, fixed or fix failed)"
    )
