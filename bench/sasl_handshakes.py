#!/usr/bin/env python3
"""SASL handshake cost: opens connections one after another for --seconds, each
authenticating (SaslHandshake v1 + SaslAuthenticate v1) with SCRAM-SHA-256, SCRAM-SHA-512 or
PLAIN, or just asking ApiVersions (--mechanism NONE, the baseline), then closing. Prints
handshakes/s and, with --pid, the broker's CPU milliseconds per handshake (utime + stime
from /proc/PID/stat).

  python3 bench/sasl_handshakes.py --bootstrap 127.0.0.1:29294 --mechanism SCRAM-SHA-256 \
      --user bench --password bench-secret --seconds 10 --pid $STROM_PID

The SCRAM client side (RFC 5802) is written here with hashlib/hmac; its PBKDF2 runs once per
run (the salted password is cached per salt and iteration count, as a real client could),
so the client spends little CPU and the broker's share is what is measured.
"""

import argparse
import base64
import hashlib
import hmac
import os
import socket
import struct
import time


def frame(api_key, version, correlation_id, body):
    client_id = b"sasl-bench"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def read_response(sock):
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the broker")
            buf += chunk
        return buf

    (length,) = struct.unpack(">i", exactly(4))
    data = exactly(length)
    return data[4:]  # response header v0: the correlation id


def kafka_string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def handshake(sock, mechanism):
    sock.sendall(frame(17, 1, 1, kafka_string(mechanism)))
    body = read_response(sock)
    (error,) = struct.unpack(">h", body[:2])
    if error:
        raise RuntimeError(f"SaslHandshake error {error}")


def authenticate(sock, correlation_id, token):
    sock.sendall(frame(36, 1, correlation_id, struct.pack(">i", len(token)) + token))
    body = read_response(sock)
    (error,) = struct.unpack(">h", body[:2])
    pos = 2
    (mlen,) = struct.unpack(">h", body[pos:pos + 2])
    pos += 2
    message = body[pos:pos + mlen].decode() if mlen >= 0 else None
    pos += max(mlen, 0)
    (alen,) = struct.unpack(">i", body[pos:pos + 4])
    pos += 4
    if error:
        raise RuntimeError(f"SaslAuthenticate error {error}: {message}")
    return body[pos:pos + alen]


SALTED = {}


def scram(sock, mechanism, user, password):
    digest = hashlib.sha256 if mechanism == "SCRAM-SHA-256" else hashlib.sha512
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={user},r={nonce}"
    server_first = authenticate(sock, 2, f"n,,{first_bare}".encode()).decode()
    fields = dict(kv.split("=", 1) for kv in server_first.split(","))
    salt, iterations = base64.b64decode(fields["s"]), int(fields["i"])
    key = (salt, iterations, digest().name)
    if key not in SALTED:
        SALTED[key] = hashlib.pbkdf2_hmac(digest().name, password.encode(), salt, iterations)
    salted = SALTED[key]
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored_key = digest(client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, digest).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    server_final = authenticate(sock, 3, final.encode()).decode()
    server_key = hmac.new(salted, b"Server Key", digest).digest()
    expected = base64.b64encode(hmac.new(server_key, auth_message, digest).digest()).decode()
    if server_final != f"v={expected}":
        raise RuntimeError(f"bad server signature: {server_final}")


def one(host, port, mechanism, user, password):
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if mechanism == "NONE":
            sock.sendall(frame(18, 0, 1, b""))
            read_response(sock)
            return
        handshake(sock, mechanism)
        if mechanism == "PLAIN":
            authenticate(sock, 2, f"\0{user}\0{password}".encode())
        else:
            scram(sock, mechanism, user, password)


def cpu_ms(pid):
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) * 1000.0 / ticks


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--mechanism", default="SCRAM-SHA-256")
    p.add_argument("--user", default="bench")
    p.add_argument("--password", default="bench-secret")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--pid", type=int)
    a = p.parse_args()
    host, port = a.bootstrap.rsplit(":", 1)
    one(host, int(port), a.mechanism, a.user, a.password)  # warm-up (and PBKDF2 cache)
    cpu0, t0, n = cpu_ms(a.pid), time.monotonic(), 0
    while time.monotonic() - t0 < a.seconds:
        one(host, int(port), a.mechanism, a.user, a.password)
        n += 1
    wall = time.monotonic() - t0
    cpu = cpu_ms(a.pid) - cpu0
    line = f"{a.mechanism}: {n} handshakes in {wall:.1f} s = {n / wall:.0f}/s"
    if a.pid:
        line += f"; broker CPU {cpu / n:.3f} ms per handshake"
    print(line)


if __name__ == "__main__":
    main()
