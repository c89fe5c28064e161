"""Test-only: query a Minecraft Java server's status with mcstatus (pinned, see
requirements.txt), a third-party client nobody here wrote, so container-manager's
responder is checked against a real implementation of the status protocol.

Usage: python mc_status.py CONNECT_HOST PORT SERVER_ADDRESS [timeout_s] [protocol]
  Connects to CONNECT_HOST:PORT while the handshake carries SERVER_ADDRESS (and
  PORT) as the server address, the way a player's client that resolved
  SERVER_ADDRESS would; the responder routes on it like mc-router.
  timeout_s (default 5) bounds the whole query; protocol (default 47, mcstatus's
  own default) is the protocol version sent in the handshake.
Prints one JSON line on stdout:
  {"motd": str, "version": str, "protocol": int, "players_online": int,
   "players_max": int, "latency_ms": float}                          exit 0
  {"error": "ExceptionType: message"}                                exit 1
What mcstatus 14.2.0 sends for status(): handshake (next state 1) + status
request (0x00) on one connection, then reads one status response; it does NOT
send a ping (0x01) here: latency_ms is the status request's round trip.

How SERVER_ADDRESS differs from CONNECT_HOST: mcstatus 14.2.0 has no public way to
connect to one address and name another in the handshake (JavaServer uses its one
Address for both socket.create_connection and the handshake), so this script
makes socket.getaddrinfo resolve exactly SERVER_ADDRESS to CONNECT_HOST, like an
/etc/hosts entry, and otherwise uses the public JavaServer API unchanged.
"""

import json
import signal
import socket
import sys


def main(argv):
    if len(argv) not in (4, 5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    connect_host, port, server_address = argv[1], int(argv[2]), argv[3]
    timeout = float(argv[4]) if len(argv) > 4 else 5.0
    protocol = int(argv[5]) if len(argv) > 5 else 47

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.lower() == server_address.lower():
            host = connect_host
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo

    def deadline(_sig, _frame):
        raise TimeoutError(f"no status within {timeout:g} s")

    # Per-operation socket timeout is mcstatus's own; this bounds the whole query
    # (a server trickling bytes would otherwise reset it on every read).
    signal.signal(signal.SIGALRM, deadline)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        from mcstatus import JavaServer

        server = JavaServer(server_address, port, timeout=timeout)
        # tries=1: mcstatus retries on the same (possibly broken) connection, which
        # only hides the first error.
        st = server.status(tries=1, version=protocol)
        out = {
            "motd": st.motd.to_plain(),
            "version": st.version.name,
            "protocol": st.version.protocol,
            "players_online": st.players.online,
            "players_max": st.players.max,
            "latency_ms": st.latency,
        }
        code = 0
    except BaseException as e:  # noqa: BLE001 - every failure becomes one JSON line
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = f"{type(e).__name__}: {e}"
        if e.__cause__ is not None:
            msg += f" ({type(e.__cause__).__name__}: {e.__cause__})"
        out, code = {"error": msg}, 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    print(json.dumps(out), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
