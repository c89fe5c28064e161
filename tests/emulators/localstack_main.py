"""Start LocalStack's runtime (as `python -m localstack.runtime.main` does), but bound
to the host given in GATEWAY_LISTEN.

LocalStack 2026.3.0's default (twisted) gateway ignores the host part of GATEWAY_LISTEN
and listens on 0.0.0.0 (see "TODO: interface = host?" in
localstack/runtime/server/twisted.py). We keep that server, the one checked against
aws-sdk-rust, and only hand it the interface, so the emulator answers on loopback only.
tests/emulators/selftest.sh checks the listening address.
"""

import runpy

from twisted.internet import endpoints

from localstack import config

_hosts = {hp.port: hp.host for hp in config.GATEWAY_LISTEN}
_TCP4ServerEndpoint = endpoints.TCP4ServerEndpoint


class _BoundTCP4ServerEndpoint(_TCP4ServerEndpoint):
    def __init__(self, reactor, port, backlog=50, interface=""):
        super().__init__(reactor, port, backlog, interface or _hosts.get(port, ""))


endpoints.TCP4ServerEndpoint = _BoundTCP4ServerEndpoint
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
