"""Test-only, throwaway: a minimal fake "sleeping" Minecraft Java server, used only
by selftest.sh to prove that mc_status.py and mc_login.js work (it is NOT the
daemon's responder and nothing else should depend on it). Standard library only.

Implements just:
  handshake   0x00: VarInt protocol, String server address, u16 port, VarInt next state
  status      0x00 request  -> 0x00 response {"version":{"name":"sleeping","protocol":<the
                               client's protocol>},"players":{"max":0,"online":0},
                               "description":{"text":"<server address> is sleeping"}}
              0x01 ping     -> 0x01 pong (same 8-byte payload), then close
  login       0x00 start    -> 0x00 Login Disconnect, a JSON text component string
                               {"text":"<server address> is starting, come back in 30 s"},
                               then close
Packets are uncompressed: VarInt length, VarInt id, payload. Strings are VarInt
length + UTF-8.

Usage: python fake_server.py PORT_FILE [LOG_FILE] [--silent]
  Listens on 127.0.0.1 at a free port and writes it to PORT_FILE once listening.
  Each handshake is appended to LOG_FILE as a JSON line. --silent: accept
  connections and never answer (to check the clients' timeouts).
"""

import json
import os
import socket
import struct
import sys
import threading


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk
    return buf


def read_varint_sock(conn):
    value = 0
    for i in range(5):
        b = read_exact(conn, 1)[0]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value
    raise ValueError("VarInt too long")


def read_varint(data, pos):
    value = 0
    for i in range(5):
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if value >= 1 << 31:
                value -= 1 << 32
            return value, pos
    raise ValueError("VarInt too long")


def write_varint(value):
    value &= 0xFFFFFFFF
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_string(data, pos):
    n, pos = read_varint(data, pos)
    return data[pos:pos + n].decode("utf-8"), pos + n


def write_string(s):
    b = s.encode("utf-8")
    return write_varint(len(b)) + b


def read_packet(conn):
    length = read_varint_sock(conn)
    data = read_exact(conn, length)
    packet_id, pos = read_varint(data, 0)
    return packet_id, data, pos


def send_packet(conn, packet_id, payload=b""):
    body = write_varint(packet_id) + payload
    conn.sendall(write_varint(len(body)) + body)


def handle(conn, log_path, log_lock):
    with conn:
        conn.settimeout(10)
        packet_id, data, pos = read_packet(conn)
        if packet_id != 0:
            return
        protocol, pos = read_varint(data, pos)
        address, pos = read_string(data, pos)
        (port,) = struct.unpack_from(">H", data, pos)
        pos += 2
        next_state, pos = read_varint(data, pos)
        record = {"protocol": protocol, "address": address, "port": port, "next_state": next_state}
        if next_state == 1:
            packet_id, data, pos = read_packet(conn)
            if packet_id == 0:  # status request
                status = {
                    "version": {"name": "sleeping", "protocol": protocol},
                    "players": {"max": 0, "online": 0},
                    "description": {"text": f"{address} is sleeping"},
                }
                send_packet(conn, 0x00, write_string(json.dumps(status)))
                record["status"] = True
                try:
                    packet_id, data, pos = read_packet(conn)
                except (EOFError, OSError):
                    packet_id = None  # client closed without a ping (mcstatus.status())
            if packet_id == 1:  # ping: echo the 8-byte payload
                send_packet(conn, 0x01, data[pos:pos + 8])
                record["ping"] = True
        elif next_state in (2, 3):
            packet_id, data, pos = read_packet(conn)
            if packet_id == 0:  # login start: String name (+ UUID on 1.20.2+)
                record["username"], pos = read_string(data, pos)
                reason = {"text": f"{address} is starting, come back in 30 s"}
                send_packet(conn, 0x00, write_string(json.dumps(reason)))
                record["kicked"] = True
        if log_path:
            with log_lock, open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    silent = "--silent" in argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    port_file = args[0]
    log_path = args[1] if len(args) > 1 else None
    log_lock = threading.Lock()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{srv.getsockname()[1]}\n")
    os.replace(port_file + ".tmp", port_file)
    held = []
    while True:
        conn, _ = srv.accept()
        if silent:
            held.append(conn)  # never answer, never close
            continue

        def run(c=conn):
            try:
                handle(c, log_path, log_lock)
            except Exception as e:  # noqa: BLE001 - a throwaway server logs and goes on
                print(f"fake_server: {type(e).__name__}: {e}", file=sys.stderr)

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
