"""The cycle collector, tuned for processes that hold thousands of connections.

A server speaking to a big fleet, and a simulator speaking for one, keep tens of thousands of
long-lived objects (connections, long polls, agents' state) and allocate container objects
quickly. At Python's default threshold (700 allocations) the youngest generation is collected
hundreds of times a second, and each full collection walks every live object: at 8 000
simulated hosts that cost the server about a fifth of its CPU (bench/agents.py). Reference
counting frees nearly everything here, so the collector may run far less often; what exists
once the process is ready (modules, the application) is frozen out of its walks altogether.

The youngest generation is collected after 1 000 000 allocations: each of its collections
walks every young object still alive, and under load those are mostly the open polls'
coroutines, requests and timers, as many whatever the threshold. At 20 000, a fleet of
10 000 agents spent about a tenth of the server's CPU and a fifth of the simulator's in
such collections, each 10 to 300 ms; at 200 000 the server still collected every half
minute while the fleet enrolled or idled, and once in the task, for 0.42 s (a twentieth of
the task's CPU); at 1 000 000, not once after start-up (bench/agents.py, the collector's
own timings). Reference counting frees nearly everything, so the cyclic garbage that waits
longer for its collection stays small.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 1_000_000  # allocations between collections of the youngest generation
OLDER_THRESHOLDS = (50, 100)


def tune_for_many_connections() -> None:
    """Call once the process is built and before it serves."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
