"""WHERE clauses shared by the aggregate queries: one place that turns API filters into bound SQL."""

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


@dataclass(frozen=True)
class RunFilter:
    """The filters every aggregate endpoint takes. Times are Unix ns, already parsed."""

    project: str | None = None
    service: str | None = None
    agent: str | None = None
    since: int | None = None
    until: int | None = None

    def traces(self, alias: str = "traces") -> Where:
        """Conditions on a ``traces`` row (the run): project, root service, agent, start time."""
        return (Where()
                .add_if(self.project, f"{alias}.project = ?")
                .add_if(self.service, f"{alias}.service_name = ?")
                .add_if(self.agent, f"{alias}.agent_name = ?")
                .add_if(self.since, f"{alias}.start_time_unix_nano >= ?")
                .add_if(self.until, f"{alias}.start_time_unix_nano < ?"))
