"""The sync group's rendezvous port (rlcore/actors.py free_port)."""


def test_free_port_is_outside_the_ephemeral_range_and_bindable():
    """Ports handed out by bind(0) (Ray's workers, gRPC) cannot steal it before the sync group's
    TCPStore listens on it."""
    import socket

    from rlcore.ports import _ephemeral_range, free_port

    low, high = _ephemeral_range()
    for _ in range(20):
        port = free_port()
        assert 20000 <= port < low or low - 20000 < 64
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
