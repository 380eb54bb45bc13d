"""The filters every aggregate endpoint takes, as bound SQL conditions."""

from __future__ import annotations

import time
from dataclasses import dataclass

from trajscope.query.params import TimeText, time_param
from trajscope.storage.sql import Where


@dataclass(frozen=True)
class RunFilter:
    """The filters every aggregate endpoint takes. Times are Unix ns, already parsed."""

    project: str | None = None
    service: str | None = None
    agent: str | None = None
    since: int | None = None
    until: int | None = None

    def traces(self, alias: str = "traces", time_column: str = "start_time_unix_nano") -> Where:
        """Conditions on a row with project, service_name, agent_name and a time column (a ``traces`` run
        by default; spans and guardrail checks carry the same columns)."""
        return (Where()
                .add_if(self.project, f"{alias}.project = ?")
                .add_if(self.service, f"{alias}.service_name = ?")
                .add_if(self.agent, f"{alias}.agent_name = ?")
                .add_if(self.since, f"{alias}.{time_column} >= ?")
                .add_if(self.until, f"{alias}.{time_column} < ?"))


def run_filter(
    project: str | None = None,
    service: str | None = None,
    agent: str | None = None,
    since: TimeText = None,
    until: TimeText = None,
) -> RunFilter:
    """The filters every aggregate route takes (a FastAPI dependency)."""
    now = time.time_ns()
    return RunFilter(project, service, agent, time_param("since", since, now), time_param("until", until, now))
