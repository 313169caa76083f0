"""Who the router lets in, with plain values: caps, shedding order, what the log says."""

from __future__ import annotations

from corral.router.admission import LOG_INTERVAL, Admission, connection_budget


class Conn:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _admission(**kw: int) -> tuple[Admission, list[str], Clock]:
    lines: list[str] = []
    clock = Clock()
    options = {"per_client": 3, "most": 64, "file_limit": 256} | kw
    admission = Admission(log=lambda app, line: lines.append(line), clock=clock, **options)
    return admission, lines, clock


def test_one_address_is_capped_and_the_refusals_are_logged_once_per_interval() -> None:
    admission, lines, clock = _admission()
    assert [admission.admit("10.0.0.1") for _ in range(3)] == ["", "", ""]
    assert admission.admit("10.0.0.1") == "client"
    assert admission.admit("10.0.0.2") == ""  # another address is not affected
    for _ in range(5):
        assert admission.admit("10.0.0.1") == "client"
    assert len(lines) == 1 and "code=H22" in lines[0] and 'fwd="10.0.0.1"' in lines[0]
    clock.now += LOG_INTERVAL
    admission.admit("10.0.0.1")
    assert len(lines) == 2 and "count=6" in lines[1]  # the five held back, and this one
    admission.leave("10.0.0.1", Conn("gone"))
    assert admission.admit("10.0.0.1") == ""


def test_near_the_limit_the_connections_idle_longest_are_shed_first() -> None:
    admission, lines, _ = _admission(per_client=0, most=16)
    conns = [Conn(f"c{n}") for n in range(14)]
    for conn in conns:
        assert admission.admit("10.0.0.1") == ""
        admission.add(conn)  # each becomes idle in turn: c0 has waited longest
    admission.discard(conns[0])  # busy again: not a candidate
    assert admission.admit("10.0.0.1") == ""
    assert [c.name for c in conns if c.closed] == ["c1"]
    assert "Idle connections shed" in lines[0] and "nofile=256" in lines[0]


def test_with_nothing_idle_at_the_limit_new_connections_are_refused() -> None:
    admission, lines, _ = _admission(per_client=0, most=8)
    for _ in range(8):
        assert admission.admit("10.0.0.1") == ""
    assert admission.admit("10.0.0.9") == "total"
    assert "code=H22" in lines[-1] and "none is idle" in lines[-1]


def test_running_out_of_descriptors_frees_some_and_names_the_cause() -> None:
    admission, lines, _ = _admission(per_client=0)
    conns = [Conn(f"c{n}") for n in range(8)]
    for conn in conns:
        admission.admit("10.0.0.1")
        admission.add(conn)
    admission.out_of_files()
    assert [c.closed for c in conns[:2]] == [True, True] and not conns[2].closed
    assert "code=H99" in lines[-1] and "out of file descriptors" in lines[-1]
    assert "H10" not in lines[-1]


def test_the_budget_leaves_each_client_room_for_a_dyno_connection() -> None:
    assert connection_budget(20000) == (20000 - 256) // 2
    assert connection_budget(160) == 60
    assert connection_budget(10) == 8
