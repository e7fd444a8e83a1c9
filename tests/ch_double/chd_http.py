"""chd_http.py: cloud-hypervisor's HTTP/1.1 API server on a unix socket (micro_http's behaviour as CH uses it).

Each request goes to the VMM thread (the main thread) and waits for its answer, as CH's http-server
thread sends an ApiRequest to the VMM thread. Answers carry `Server: Cloud Hypervisor API` and
`Content-Type: application/json`; errors are a JSON array of the error chain's messages.
"""

import json
import socket
import threading

PAYLOAD_MAX = 4 << 20  # HTTP_PAYLOAD_MAX_SIZE
HEAD_MAX = 64 << 10
REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
           501: "Not Implemented"}


class Request:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body  # bytes, or None when the request had none (as micro_http: no Content-Length or 0)


def response(status, body=None):
    head = f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nServer: Cloud Hypervisor API\r\n"
    head += "Connection: keep-alive\r\nContent-Type: application/json\r\n"
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    if status != 204:
        head += f"Content-Length: {len(data)}\r\n"
    return head.encode() + b"\r\n" + data


def error_body(*chain):
    return list(chain)


class ApiServer:
    def __init__(self, listener, handle, violation, log):
        self.listener = listener
        # Request -> (status, body or None, sent): runs the request on the VMM thread; sent() is
        # called once the answer is written (or cannot be), so the process does not exit under it.
        self.handle = handle
        self.violation = violation  # (what, request or None) -> None
        self.log = log
        threading.Thread(target=self._accept_loop, daemon=True, name="http-server").start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="http-conn").start()

    def _serve(self, conn):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    if len(buf) > HEAD_MAX:
                        conn.sendall(response(400, error_body("Bad Request")))
                        return
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ")
                except ValueError:
                    conn.sendall(response(400, error_body("Bad Request")))
                    return
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    self.violation("chunked request body (micro_http does not accept it)", None)
                    conn.sendall(response(400, error_body("Bad Request")))
                    return
                length = int(headers.get("content-length", "0") or "0")
                if length > PAYLOAD_MAX:
                    conn.sendall(response(413, error_body("Payload Too Large")))
                    return
                if length > len(buf) and headers.get("expect", "").lower() == "100-continue":
                    # curl asks before sending a large body; micro_http answers the interim 100.
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = (buf[:length], buf[length:]) if length else (None, buf)
                path = target.split("?", 1)[0]
                req = Request(method, path, headers, body)
                if not buf and self._half_closed(conn):
                    # micro_http drops a connection whose peer shut down its write side: no answer.
                    self.violation("client half-closed its socket before reading the reply "
                                   "(CH drops the connection unanswered)", req)
                    return
                status, rbody, sent = self.handle(req)
                try:
                    conn.sendall(response(status, rbody))
                finally:
                    sent()
                if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                    return
        except OSError:
            pass
        finally:
            conn.close()

    @staticmethod
    def _half_closed(conn):
        try:
            return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
