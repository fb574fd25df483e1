"""The Locust step load (a staircase of closed-loop users) and its command-line flags.

Stdlib only. A *step load* raises the number of closed-loop users (each sends its next
request as soon as the previous one returns) by ``step_users`` every ``step_s`` seconds,
from ``start_users`` up to ``max_users``::

    users
      3 |                 +--------
      2 |        +--------+
      1 +--------+
        0       step_s   2*step_s  3*step_s  -> t (s)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from anoncodec.errors import ConfigError

__all__ = ["StepLoad", "STEP_LOAD_FLAGS", "add_step_load_arguments", "step_load_from", "step_load_argv"]


@dataclass(frozen=True)
class StepLoad:
    """A staircase of closed-loop users (see the module docstring).

    Attributes:
        start_users: users during the first step.
        step_users: users added per step.
        max_users: users of the last step (the staircase stops there).
        step_s: length of one step, seconds.
        spawn_rate: users started per second when a step begins.
        settle_s: seconds at the start of each step left out of its statistics.
    """

    start_users: int = 1
    step_users: int = 1
    max_users: int = 4
    step_s: float = 60.0
    spawn_rate: float = 10.0
    settle_s: float = 5.0

    def __post_init__(self) -> None:
        if not (isinstance(self.start_users, int) and self.start_users >= 1):
            raise ConfigError(f"start_users={self.start_users!r}; expected an integer >= 1")
        if not (isinstance(self.step_users, int) and self.step_users >= 1):
            raise ConfigError(f"step_users={self.step_users!r}; expected an integer >= 1")
        if not (isinstance(self.max_users, int) and self.max_users >= self.start_users):
            raise ConfigError(f"max_users={self.max_users!r}; expected an integer >= start_users "
                              f"({self.start_users})")
        if not self.step_s > 0 or not self.spawn_rate > 0:
            raise ConfigError(f"step_s={self.step_s!r}, spawn_rate={self.spawn_rate!r}; expected positive numbers")
        if not 0 <= self.settle_s < self.step_s:
            raise ConfigError(f"settle_s={self.settle_s!r}; expected 0 <= settle_s < step_s ({self.step_s})")

    @property
    def n_steps(self) -> int:
        """Number of steps."""
        return (self.max_users - self.start_users) // self.step_users + 1

    @property
    def duration_s(self) -> float:
        """Length of the whole staircase, seconds."""
        return self.n_steps * self.step_s

    def users(self, step: int) -> int:
        """Users during ``step`` (0-based)."""
        if not 0 <= step < self.n_steps:
            raise ConfigError(f"step {step} is outside 0..{self.n_steps - 1}")
        return self.start_users + step * self.step_users

    def step_at(self, t_s: float) -> int | None:
        """The step running at ``t_s`` seconds after the start (None before 0 or after the end)."""
        if t_s < 0 or t_s >= self.duration_s:
            return None
        return int(t_s // self.step_s)

    def window(self, step: int) -> tuple[float, float]:
        """``(begin, end)`` in seconds of the part of ``step`` whose requests are measured."""
        self.users(step)  # range check
        return step * self.step_s + self.settle_s, (step + 1) * self.step_s

    def tick(self, t_s: float) -> tuple[int, float] | None:
        """What a Locust ``LoadTestShape.tick`` returns at ``t_s``: ``(users, spawn_rate)`` or None (stop)."""
        step = self.step_at(t_s)
        return None if step is None else (self.users(step), self.spawn_rate)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepLoad:
        return cls(**d)


#: the staircase's command-line flags -> (StepLoad field, type, help); the locustfile and
#: load_tests/run.py both add them with :func:`add_step_load_arguments`, defaults from StepLoad
STEP_LOAD_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--start-users", "start_users", int, "users during the first step"),
    ("--step-users", "step_users", int, "users added per step"),
    ("--max-users", "max_users", int, "users of the last step"),
    ("--step-seconds", "step_s", float, "length of one step, seconds"),
    ("--settle-seconds", "settle_s", float, "seconds at the start of each step left out of its statistics"),
    ("--step-spawn-rate", "spawn_rate", float, "users started per second when a step begins"),
)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def add_step_load_arguments(add_argument: Any) -> None:
    """Add the staircase flags through ``add_argument`` (an argparse parser's, or Locust's)."""
    defaults = StepLoad()
    for flag, name, kind, text in STEP_LOAD_FLAGS:
        add_argument(flag, type=kind, default=getattr(defaults, name), help=f"{text} (default: %(default)s)")


def step_load_from(options: Any) -> StepLoad:
    """The :class:`StepLoad` that parsed staircase flags describe (raises ConfigError if invalid)."""
    return StepLoad(**{name: getattr(options, _dest(flag)) for flag, name, _, _ in STEP_LOAD_FLAGS})


def step_load_argv(options: Any) -> list[str]:
    """The staircase flags of ``options`` as arguments, to pass them on to another process."""
    return [arg for flag, *_ in STEP_LOAD_FLAGS for arg in (flag, str(getattr(options, _dest(flag))))]
