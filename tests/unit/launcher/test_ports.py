"""`omniroute run` refuses ports in use before it starts anything, replicas' ports included."""

from __future__ import annotations

import socket

import pytest

from services.launcher import cli


def test_a_replica_port_in_use_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind((cli.HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("OMNIROUTE_ORDERS_2_PORT", str(port))
        orders = cli.ServiceSpec.named("orders", default_port=0)
        (replica,) = cli._replicas_of(orders, 2)
        with pytest.raises(cli.LaunchError, match=f"port {port} \\(orders-2\\).*ORDERS_2_PORT"):
            cli._check_ports_free([replica], kafka_port=None)


def test_a_replica_on_its_service_port_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTE_ORDERS_PORT", "18123")
    monkeypatch.setenv("OMNIROUTE_ORDERS_2_PORT", "18123")
    orders = cli.ServiceSpec.named("orders", default_port=0)
    with pytest.raises(cli.LaunchError, match="orders-2 and orders are both set to port 18123"):
        cli._check_ports_free([orders, *cli._replicas_of(orders, 2)], kafka_port=None)
