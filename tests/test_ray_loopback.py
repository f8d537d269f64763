"""The project's local Ray listens on loopback only: once a task ran, no server of its session
(GCS, raylet, the driver's and the workers' gRPC, the agents) is reachable from another machine.
Metrics servers that come up seconds later bind by the same node IP."""

import ipaddress
import os

import psutil

from hi3dgen.parallel import ExecutorConfig, init_ray


def _pid() -> int:
    return os.getpid()


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)  # gRPC binds 127.0.0.1 as ::ffff:127.0.0.1
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def test_local_ray_listens_on_loopback_only(ray_local):
    ray = init_ray(ExecutorConfig())  # the session's local Ray (or a new one if a test ended it)
    worker = ray.get(ray.remote(_pid).remote())

    me = psutil.Process()
    session = {me.pid} | {p.pid for p in me.children(recursive=True)}
    assert worker in session
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.pid in session
    }
    gcs_port = int(ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])
    assert gcs_port in {port for _, port in listening}
    assert sorted(a for a in listening if not _loopback(a[0])) == []
