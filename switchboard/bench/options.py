"""What a bench run does: which stages run, how many instances each, how much load (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Pipeline order; each stage is one service of `switchboard run`.
STAGES = ("intake", "router", "sla", "notifier")
STAGE_SERVICES = {"intake": "intake-http", "router": "router", "sla": "sla", "notifier": "notifier"}
_ALIASES = {"intake-http": "intake"}
# More consumers than partitions would idle (8 per topic, SPEC §1); intake-http scales further but
# a 2-core box gains nothing past a handful.
MAX_INSTANCES = 16


@dataclass(frozen=True)
class BenchOptions:
    """One run. `only` drains a pre-filled backlog through one stage (intake: forms as fast as asked)."""

    n: int = 1000
    rate: float = 0.0  # offered forms per second; 0 = as fast as the intake answers
    duration: float | None = None  # seconds: stop offering load, or waiting for a drain, after this long
    only: str | None = None
    instances: Mapping[str, int] = field(default_factory=dict)
    json_path: Path | None = None
    start: bool = False  # a private Kafka and Redis even when a stack runs
    grace: float = 30.0  # seconds without any progress after which the run stops waiting
    concurrency: int = 64  # open connections of the form poster
    # Forms posted alongside, as fast as answered, from one outside client address: the form's rate limit
    # (issue #16) answers all but the first few 429, while the other forms are measured as usual.
    flood: int = 0
    flood_rate: float = 0.0  # the flood's forms per second; 0 = as fast as answered

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("--n must be at least 1")
        if self.rate < 0:
            raise ValueError("--rate must be 0 (as fast as possible) or positive")
        if self.flood < 0:
            raise ValueError("--flood must be 0 (none) or positive")
        if self.flood_rate < 0:
            raise ValueError("--flood-rate must be 0 (as fast as possible) or positive")
        if self.flood and self.backlog:
            raise ValueError("--flood posts forms: it runs with intake-http")
        if self.only is not None and self.only not in STAGES:
            raise ValueError(f"--only must be one of {', '.join(STAGES)}")
        if idle := sorted(set(self.instances) - set(self.stages)):
            raise ValueError(f"--instances names {', '.join(idle)}, which does not run with --only {self.only}")

    @property
    def stages(self) -> tuple[str, ...]:
        return (self.only,) if self.only else STAGES

    @property
    def backlog(self) -> bool:
        """Whether the run pre-fills a topic instead of posting forms."""
        return self.only in ("router", "sla", "notifier")

    def count(self, stage: str) -> int:
        return self.instances.get(stage, 1)

    def processes(self) -> list[tuple[str, str]]:
        """(service, label) of every process to start, e.g. ("router", "router-2")."""
        return [
            (STAGE_SERVICES[stage], f"{STAGE_SERVICES[stage]}-{number}")
            for stage in self.stages
            for number in range(1, self.count(stage) + 1)
        ]

    def as_json(self) -> dict:
        return {
            "n": self.n,
            "rate": self.rate,
            "duration": self.duration,
            "only": self.only,
            "instances": {stage: self.count(stage) for stage in self.stages},
            "start": self.start,
            "grace": self.grace,
            "concurrency": self.concurrency,
            "flood": self.flood,
            "flood_rate": self.flood_rate,
        }


def parse_instances(text: str | None) -> dict[str, int]:
    """`"router=2,notifier=2"` → `{"router": 2, "notifier": 2}`; ValueError names the bad part."""
    counts: dict[str, int] = {}
    for part in filter(None, (piece.strip() for piece in (text or "").split(","))):
        name, equals, number = part.partition("=")
        stage = _ALIASES.get(name.strip(), name.strip())
        if not equals or stage not in STAGES:
            raise ValueError(f"{part!r}: expected STAGE=COUNT with STAGE one of {', '.join(STAGES)}")
        if not number.strip().isdigit() or not 1 <= int(number) <= MAX_INSTANCES:
            raise ValueError(f"{part!r}: COUNT must be a whole number from 1 to {MAX_INSTANCES}")
        if stage in counts:
            raise ValueError(f"{part!r}: {stage} is named twice")
        counts[stage] = int(number)
    return counts
