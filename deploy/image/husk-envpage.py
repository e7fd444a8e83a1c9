#!/usr/bin/python3
"""husk-envpage: serve a page showing the values of /etc/husk/env, read on every request.

The file is what husk's NoCloud seed writes: KEY="value" lines, the value in double quotes
with \\, ", $ and ` escaped by a backslash (so sh and systemd's EnvironmentFile read the same
value); a value may span lines. /env.json gives the same values as JSON, next to the ones
systemd gave this service through EnvironmentFile= (its own reading of the same file, when the
service started), the host name and the seed's files' modes: what the image tests check."""
import html
import json
import os
import re
import socket
import sys
import http.server

ENV_FILE = "/etc/husk/env"
SEED_FILES = ("/etc/husk/env", "/etc/profile.d/husk-env.sh",
              "/etc/systemd/system/service.d/husk-env.conf", "/etc/ring/env")
LINE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"$', re.M | re.S)


def read_env():
    try:
        with open(ENV_FILE, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [(m.group(1), re.sub(r"\\(.)", r"\1", m.group(2), flags=re.S)) for m in LINE.finditer(text)]


def modes():
    out = {}
    for path in SEED_FILES:
        try:
            st = os.stat(path)
            out[path] = {"mode": "%04o" % (st.st_mode & 0o7777), "link": os.readlink(path) if os.path.islink(path) else None}
        except OSError:
            out[path] = None
    return out


class Page(http.server.BaseHTTPRequestHandler):
    def reply(self, body, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        env = read_env()
        if self.path == "/env.json":
            doc = {"file": dict(env), "service": {k: os.environ.get(k) for k, _ in env},
                   "hostname": socket.gethostname(), "files": modes()}
            return self.reply(json.dumps(doc, ensure_ascii=False).encode(), "application/json")
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td><pre>{html.escape(v)}</pre></td></tr>\n" for k, v in env)
        body = ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>husk</title></head>\n"
                f"<body><h1>husk disk image: {html.escape(socket.gethostname())}</h1>\n<table>\n{rows}</table>"
                "</body></html>\n").encode()
        self.reply(body, "text/html; charset=utf-8")

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    http.server.ThreadingHTTPServer(("", port), Page).serve_forever()
