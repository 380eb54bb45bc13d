"""Building WHERE clauses with bound parameters, for the store and the query layer alike."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Where:
    """Conditions and their parameters, joined with AND."""

    clauses: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, clause: str, *params: object) -> Where:
        self.clauses.append(clause)
        self.params.extend(params)
        return self

    def add_if(self, value: object, clause: str) -> Where:
        if value is not None:
            self.add(clause, value)
        return self

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"
