"""How a job ends, in words every dialect understands.

The handler's result becomes one Outcome (que.dialects decides which, by its Ruby's rules),
and the dialect turns the Outcome into its statement. Kept apart from both so the engine's
books can carry outcomes without knowing any dialect.
"""

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Outcome:
    """`kind` is DESTROY (the row deleted), FINISH (kept, finished_at set: Que 2), EXPIRE
    (kept, expired_at set: Que 2), RETRY (the error recorded, due again after `delay`
    seconds) or DEAD (the error recorded, set aside for good: Que 0.x's retry limit).
    `message` and `backtrace` are the error's (for FINISH or EXPIRE with an `after`, the
    error the handler raised after asking for that end, which Ruby records too)."""

    kind: str
    message: str | None = None
    backtrace: str | None = None
    delay: float = 0.0
    # What Ruby's error handling does after a handler that asked for FINISH or EXPIRE then
    # raised: RETRY (the error recorded) or EXPIRE (past the retry limit), in the same
    # transaction.
    after: str | None = None

    DESTROY: ClassVar[str] = "destroy"
    FINISH: ClassVar[str] = "finish"
    EXPIRE: ClassVar[str] = "expire"
    RETRY: ClassVar[str] = "retry"
    DEAD: ClassVar[str] = "dead"

    @property
    def failed(self) -> bool:
        """Whether the job's error is recorded (its error_count goes up)."""
        return self.kind in (self.RETRY, self.DEAD)
