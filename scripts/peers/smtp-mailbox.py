#!/usr/bin/python3
"""A real SMTP server for the email receiver's tests: aiosmtpd (Debian's
python3-aiosmtpd, installed by scripts/peers/smtp.sh) on loopback with
STARTTLS required and AUTH PLAIN/LOGIN required, accepted only after
STARTTLS and only for the user name and password in the given files.
Prints "ready <port>" once it listens, then one JSON line per message
received ({"from", "to", "data", "tls", "login"}); runs until stdin closes.

usage: smtp-mailbox.py CERT KEY USERNAME_FILE PASSWORD_FILE
"""
import json
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    cert, key, username_file, password_file = sys.argv[1:5]
    with open(username_file, "rb") as file:
        username = file.read().strip()
    with open(password_file, "rb") as file:
        password = file.read().strip()

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        accepted = auth_data.login == username and auth_data.password == password
        # handled=False: aiosmtpd answers 535 itself when the credentials are wrong.
        return AuthResult(success=accepted, handled=False, auth_data=auth_data if accepted else None)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            auth = session.auth_data
            login = auth.login.decode() if session.authenticated and isinstance(auth, LoginPassword) else None
            record = {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "login": login,
            }
            print(json.dumps(record), flush=True)
            return "250 OK"

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
        require_starttls=True,
        tls_context=context,
        server_hostname="localhost",
    )
    controller.start()
    print(f"ready {port}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
