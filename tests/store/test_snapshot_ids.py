"""Machine snapshot ids: `snap-` and 8 characters of [a-z0-9], as the cloud's look, drawn at
random with every character possible in every place."""

from __future__ import annotations

import os
import re
import string

from vulfix.store.job_reports import new_snapshot_id


def test_snapshot_ids_look_like_the_clouds_and_do_not_repeat() -> None:
    drawn = [new_snapshot_id() for _ in range(3000)]
    assert all(re.fullmatch(r"snap-[a-z0-9]{8}", snapshot_id) for snapshot_id in drawn)
    assert len(set(drawn)) == len(drawn)
    alphabet = set(string.ascii_lowercase + string.digits)
    for place in range(5, 13):
        assert {snapshot_id[place] for snapshot_id in drawn} == alphabet, f"place {place}"


def test_a_forked_process_draws_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out without running any clean-up
        os.write(write, new_snapshot_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"snap-[a-z0-9]{8}", child)
    assert child != new_snapshot_id(), "the parent's next id is not the child's"
