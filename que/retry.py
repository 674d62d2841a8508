"""The retry schedule, the one fact Ruby Que and que-go share about failures.

After the n-th failure of a job (n counts from 1), it becomes due again n**4 + 3
seconds later: 4, 19, 84, 259, 628, 1299 ... Jobs are never dropped after some
number of failures; Que 0.x has no such limit.

The delay is capped at 100 years, first reached after 237 failures: beyond that n**4 + 3
overflows PostgreSQL's timestamp range (and, much later, bigint), and a job whose error
cannot be written would stay first in line forever.
"""

from typing import Final

MAX_DELAY_SECONDS: Final = 100 * 365 * 24 * 3600


def retry_delay(error_count: int) -> int:
    """Seconds until a job that has now failed `error_count` times runs again."""
    if isinstance(error_count, bool) or not isinstance(error_count, int):
        raise TypeError(f"error_count must be an int, got {error_count!r}")
    if error_count < 1:
        raise ValueError(f"error_count counts failures from 1, got {error_count}")
    return min(error_count**4 + 3, MAX_DELAY_SECONDS)
