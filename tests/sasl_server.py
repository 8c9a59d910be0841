"""A tiny Dovecot authentication server (the protocol Postfix's `smtpd_sasl_type = dovecot`
speaks, doc.dovecot.org "Authentication protocol"), so that a test Postfix can take SASL
logins without Dovecot installed. PLAIN only; a user's password is "pw-" + its name."""

from __future__ import annotations

import base64
import os
import socketserver
import threading


def password_for(user: str) -> str:
    return "pw-" + user


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(
            b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\n"
            + f"SPID\t{os.getpid()}\nCUID\t1\nCOOKIE\t{'0' * 32}\nDONE\n".encode()
        )
        self.wfile.flush()
        for raw in self.rfile:
            fields = raw.decode("utf-8", "replace").rstrip("\r\n").split("\t")
            if fields[0] == "AUTH":
                self.wfile.write(self.auth(fields).encode())
            elif fields[0] == "CONT":
                self.wfile.write(self.check(fields[1], fields[2] if len(fields) > 2 else ""))
            self.wfile.flush()

    def auth(self, fields: list[str]) -> str:
        request_id = fields[1]
        response = next((f[5:] for f in fields[3:] if f.startswith("resp=")), None)
        if response is None:
            return f"CONT\t{request_id}\t\n"
        return self.check(request_id, response).decode()

    def check(self, request_id: str, response: str) -> bytes:
        try:
            _, user, password = base64.b64decode(response).decode().split("\0")
        except ValueError:
            return f"FAIL\t{request_id}\n".encode()
        if password != password_for(user):
            return f"FAIL\t{request_id}\tuser={user}\n".encode()
        return f"OK\t{request_id}\tuser={user}\n".encode()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SaslServer:
    """The server on 127.0.0.1:`port` in a thread; main.cf lines to use it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SaslServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def main_cf(self) -> str:
        return (
            "smtpd_sasl_auth_enable = yes\n"
            "smtpd_sasl_type = dovecot\n"
            f"smtpd_sasl_path = inet:127.0.0.1:{self.port}\n"
            "smtpd_tls_auth_only = no\n"
        )
