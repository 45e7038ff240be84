"""A drill item (pass / warn / fail, why, what to do) and the table the items are printed as."""

from __future__ import annotations

import dataclasses

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclasses.dataclass(frozen=True)
class Item:
    """One checklist item: its name, pass / warn / fail, one line why, and what to do when it is not passing."""

    name: str
    status: str
    detail: str
    advice: str = ""

    def as_dict(self) -> dict[str, str]:
        """The item as JSON-ready keys: name, status, detail, advice."""
        return dataclasses.asdict(self)


def failed(items: list[Item]) -> bool:
    """Whether any item fails (drill's exit status is 1 then)."""
    return any(item.status == FAIL for item in items)


def table(items: list[Item]) -> str:
    """The items as a readable table: status, name, why; the advice on the next line when not passing."""
    width = max((len(item.name) for item in items), default=0)
    lines = []
    for item in items:
        lines.append(f"{item.status.upper():4}  {item.name:<{width}}  {item.detail}")
        if item.status != PASS and item.advice:
            lines.append(f"{'':4}  {'':<{width}}  -> {item.advice}")
    counts = {status: sum(item.status == status for item in items) for status in (PASS, WARN, FAIL)}
    lines.append(f"{counts[PASS]} pass, {counts[WARN]} warn, {counts[FAIL]} fail")
    return "\n".join(lines)
