"""The retry schedule, the one fact Ruby Que and que-go share about failures.

After the n-th failure of a job (n counts from 1), it becomes due again n**4 + 3
seconds later: 4, 19, 84, 259, 628, 1299 ... Que 0.x has no limit on the number of
failures; que-interop's retry limit (`max_retries`) is opt-in.

n is the row's error_count + 1 whatever the row holds: a hand-edited error_count of -1
gives n = 0 and 3 seconds, as Ruby computes it. The delay is Ruby's at every count for
which Ruby's set_error can write it: from about 1,743 failures on, now() + n**4 + 3 is
past PostgreSQL's last timestamp (year 294276), and set_error fails there, in Ruby as
here. Ruby then leaves the job due at once (and runs it again and again); que parks it
instead (que.dialects.que0.sql.SET_ERROR_UNCOUNTED). The delay is at most the largest bigint, the type
of set_error's parameter.
"""

from typing import Final

BIGINT_MAX: Final = 2**63 - 1


def retry_delay(error_count: int) -> int:
    """Seconds until a job that has now failed `error_count` times runs again."""
    if isinstance(error_count, bool) or not isinstance(error_count, int):
        raise TypeError(f"error_count must be an int, got {error_count!r}")
    return min(error_count**4 + 3, BIGINT_MAX)
