from vulfix.tcapi.rate_limiting import MemoryRateLimiter, RatePolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_exactly_the_limit_is_accepted_in_one_window_and_the_next_is_refused() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    accepted = []
    for _ in range(21):
        accepted.append(limiter.allow_now("acct:Describe", 20))
        clock.now += 0.01
    assert accepted == [True] * 20 + [False]


def test_capacity_refills_as_requests_age_out_of_the_window() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    for _ in range(20):
        assert limiter.allow_now("k", 20)
        clock.now += 0.05
    assert not limiter.allow_now("k", 20)
    clock.now = 1001.0001  # only the first request (at 1000.0) has left the window
    assert limiter.allow_now("k", 20)
    assert not limiter.allow_now("k", 20)
    clock.now = 1002.5  # everything has aged out: a full window's worth again
    assert all(limiter.allow_now("k", 20) for _ in range(20))
    assert not limiter.allow_now("k", 20)


def test_keys_are_independent() -> None:
    limiter = MemoryRateLimiter(FakeClock())
    for _ in range(2):
        assert limiter.allow_now("a:X", 2)
    assert not limiter.allow_now("a:X", 2)
    assert limiter.allow_now("a:Y", 2)
    assert limiter.allow_now("b:X", 2)


def test_policy_uses_per_action_overrides() -> None:
    policy = RatePolicy(20, {"DescribeVulFixStatus": 0})
    assert policy.limit_for("DescribeVulFixStatus") == 0
    assert policy.limit_for("CreateVulFix") == 20
