"""The test harness's ports stay out of the range the kernel uses for outgoing connections."""

import socket

from harness.stack import _bindable, _ephemeral_floor, free_port, port_block, port_pair


def test_free_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    floor = _ephemeral_floor()
    for _ in range(20):
        port = free_port()
        assert 1024 <= port < floor
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_block_fits_below_the_ephemeral_range() -> None:
    first = port_block(6)
    assert first + 5 < _ephemeral_floor()
    assert port_pair() + 1 < _ephemeral_floor()


def test_a_taken_port_is_not_bindable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        port = taken.getsockname()[1]
        assert not _bindable(port)
    assert _bindable(port)
