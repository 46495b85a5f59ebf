"""A relay node of a fleet for the tests of issue #16: a TURN-only meetlited on loopback that
registers in the relay registry (fleet.register) under a name and region, with the admin API on
when asked (drain mode), waiting until its first heartbeat is written."""

import socket

from mltest import Daemon, free_port
from mlcontrol import TURN_SECRET
from mladmin import AdminApi, tcp_port

ADMIN_TOKEN = "fleet-admin-token-0123456789abcdef"


class Relay(Daemon):
    def __init__(self, pg_url, name, region, admin=False, extra=()):
        self.name = name
        self.port = free_port(socket.AF_INET)
        self.admin_port = tcp_port() if admin else None
        sets = ["database.url=" + pg_url,
                "turn.listen=udp://127.0.0.1:%d, tcp://127.0.0.1:%d" % (self.port, self.port),
                "turn.auth-secret=" + TURN_SECRET, "turn.allow-peers=127.0.0.0/8",
                "net.workers=1", "usage.record=no", "log.level=info",
                "fleet.register=yes", "fleet.node-name=" + name, "fleet.region=" + region]
        if admin:
            sets += ["admin.listen=127.0.0.1:%d" % self.admin_port, "admin.token=" + ADMIN_TOKEN]
        super().__init__(sets + list(extra), timeout=60)
        self.wait_log("relay registered as " + name, 30)
        self.admin = AdminApi(self.admin_port, token=ADMIN_TOKEN) if admin else None

    def uris(self):
        """What it registers (derived from turn.listen), in the join's order."""
        return ["stun:127.0.0.1:%d" % self.port, "turn:127.0.0.1:%d?transport=udp" % self.port,
                "turn:127.0.0.1:%d?transport=tcp" % self.port]


__all__ = ["Relay", "ADMIN_TOKEN"]
