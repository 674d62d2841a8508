"""The retry schedule, the one fact Ruby Que and que-go share about failures.

After the n-th failure of a job (n counts from 1), it becomes due again n**4 + 3
seconds later: 4, 19, 84, 259, 628, 1299 ... Que 0.x has no limit on the number of
failures; que-interop's retry limit (`max_retries`) is opt-in.

n is the row's error_count + 1 whatever the row holds: a hand-edited error_count of -1
gives n = 0 and 3 seconds, as Ruby computes it. The delay is capped at 100 years, first
reached after 237 failures: beyond that n**4 + 3 overflows PostgreSQL's timestamp range
(and, much later, bigint), and a job whose error cannot be written would stay first in
line forever.
"""

from typing import Final

MAX_DELAY_SECONDS: Final = 100 * 365 * 24 * 3600


def retry_delay(error_count: int) -> int:
    """Seconds until a job that has now failed `error_count` times runs again."""
    if isinstance(error_count, bool) or not isinstance(error_count, int):
        raise TypeError(f"error_count must be an int, got {error_count!r}")
    return min(error_count**4 + 3, MAX_DELAY_SECONDS)
