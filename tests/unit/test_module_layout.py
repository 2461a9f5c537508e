"""The rooms of the channel and delivery code stay as the map says (DESIGN.md, Layout).

The import graph of `distributor.channels` and `distributor.delivery` is read from the
source with `ast` (imports at module level and inside functions alike, since a lazy
import still ties two modules together) and checked:

- no import circle among the channel modules: each kind imports only the shared
  contracts, and the one factory (mail.py) imports the kinds, one way; nor in the
  delivery modules, which import channels and never the other way round;
- one kind's delivery never reaches into another's: Mastodon/Bluesky delivery shares
  the ledger (delivery/ledger.py), not Telegram's module;
- no module here uses another distributor module's private names (`_name`): what is
  shared is named as shared.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "distributor"
ROOMS = ("distributor.channels", "distributor.delivery")
# The modules of distributor.channels every channel kind may import.
# What every kind may import: the contracts (values), and the reading of the rate-limit
# headers the social services share (a function; it imports no channel either).
SHARED = {"distributor.channels.contracts", "distributor.channels.rate_headers"}
# The factory: picks a kind, so it imports the kinds (and nothing imports it back).
FACTORIES = {"distributor.channels.mail"}
# Delivery modules, one per kind of channel: none imports another.
KIND_DELIVERIES = ("distributor.delivery.email", "distributor.delivery.telegram", "distributor.delivery.social")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").is_file() or (PACKAGE.parent / relative / "__init__.py").is_file()


@dataclass(frozen=True)
class Use:
    """One module's use of another distributor module: imported, or a name taken from it."""

    line: int
    target: str  # the module used
    name: str = ""  # the name taken from it ("" for the module itself)


def uses_in(source: str, package: str) -> list[Use]:
    """Every import of a distributor module in `source` (a module of `package`), at any
    depth, and every private attribute read through a module so imported (`ledger._claim`)."""
    tree = ast.parse(source)
    found: list[Use] = []
    aliases: dict[str, str] = {}  # local name -> the distributor module it is
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("distributor."):
                    found.append(Use(node.lineno, alias.name))
                    if alias.asname:
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not (base == "distributor" or base.startswith("distributor.")):
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if is_module(submodule):
                    found.append(Use(node.lineno, submodule))
                    aliases[alias.asname or alias.name] = submodule
                else:
                    found.append(Use(node.lineno, base, alias.name))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(Use(node.lineno, aliases[node.value.id], node.attr))
    return found


def graph() -> dict[str, list[Use]]:
    """Module -> its uses, for every module of the channel and delivery rooms."""
    modules = {}
    for room in ROOMS:
        for path in sorted((PACKAGE.parent / Path(*room.split("."))).rglob("*.py")):
            name = module_name(path)
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            modules[name] = uses_in(path.read_text(encoding="utf-8"), package)
    return modules


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of a graph: its strongly connected parts of more than one
    module, or a module importing itself (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.append(member)
                if member == node:
                    break
            if len(part) > 1 or node in edges.get(node, ()):
                found.append(sorted(part))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


MODULES = graph()
CHANNELS = sorted(m for m in MODULES if m.startswith("distributor.channels."))


def test_the_graph_reads_the_rooms_it_checks():
    # A graph with no modules or no imports would pass whatever the code did.
    assert {"distributor.channels.smtp", "distributor.delivery.social", "distributor.delivery.telegram"} <= set(MODULES)
    assert any(u.target.startswith("distributor.channels.") for u in MODULES["distributor.channels.smtp"])
    assert any(u.target.startswith("distributor.delivery.") for u in MODULES["distributor.delivery.social"])


def test_uses_are_found_at_any_depth_and_through_aliases():
    source = """
from distributor.delivery import leases
from distributor.delivery.telegram import PostReport, _Send
from . import outbox as files
from ..render.telegram import BotCall

def send():
    import distributor.channels.smtp
    from distributor.delivery import telegram as ledger
    return ledger._claim(), leases.claim_values, files._UNSAFE
"""
    found = {(u.target, u.name) for u in uses_in(source, "distributor.channels")}
    assert found == {
        ("distributor.delivery.leases", ""), ("distributor.delivery.telegram", "PostReport"),
        ("distributor.delivery.telegram", "_Send"), ("distributor.channels.outbox", ""),
        ("distributor.render.telegram", "BotCall"), ("distributor.channels.smtp", ""),
        ("distributor.delivery.telegram", ""), ("distributor.delivery.telegram", "_claim"),
        ("distributor.channels.outbox", "_UNSAFE"),
    }


def test_cycles_finds_a_circle_and_only_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "d": {"c"}}) == []


def test_no_import_circle_among_the_channel_modules():
    edges = {m: {u.target for u in MODULES[m] if u.target in CHANNELS} for m in CHANNELS}
    assert cycles(edges) == []


def test_no_import_circle_in_the_channel_and_delivery_rooms_together():
    edges = {m: {u.target for u in MODULES[m] if u.target in MODULES} for m in MODULES}
    assert cycles(edges) == []


@pytest.mark.parametrize("module", CHANNELS)
def test_channels_never_import_delivery(module):
    # Delivery decides and calls a channel; a channel only sends and answers.
    assert not [u.target for u in MODULES[module] if u.target.startswith("distributor.delivery")]


@pytest.mark.parametrize("module", [m for m in CHANNELS if m not in FACTORIES])
def test_each_channel_kind_imports_only_the_shared_contracts(module):
    # The contracts themselves import no channel module.
    others = sorted({u.target for u in MODULES[module]
                     if u.target.startswith("distributor.channels") and u.target not in SHARED - {module}})
    assert others == [], f"{module} imports {others}: share through contracts.py instead"


@pytest.mark.parametrize("module", KIND_DELIVERIES)
def test_one_kinds_delivery_does_not_import_another_kinds(module):
    others = sorted({u.target for u in MODULES[module] if u.target in KIND_DELIVERIES and u.target != module})
    assert others == [], f"{module} imports {others}: what kinds share belongs in delivery/ledger.py"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_of_another_distributor_module_is_used(module):
    private = sorted({f"{u.target}.{u.name} (line {u.line})" for u in MODULES[module]
                      if u.name.startswith("_") and u.target != module})
    assert private == [], f"{module} uses private names: {private}"
