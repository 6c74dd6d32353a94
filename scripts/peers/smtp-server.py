#!/usr/bin/python3
"""A real SMTP server for the smtp prober's tests: aiosmtpd (Debian's
python3-aiosmtpd) on loopback with STARTTLS and AUTH PLAIN/LOGIN, which it
accepts only after STARTTLS and only for the user name and password in the
given files. Prints "ready <port>" once it listens; runs until stdin closes.

usage: smtp-server.py CERT KEY USERNAME_FILE PASSWORD_FILE [--no-starttls]
"""
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    cert, key, username_file, password_file = sys.argv[1:5]
    starttls = "--no-starttls" not in sys.argv[5:]
    with open(username_file, "rb") as file:
        username = file.read().strip()
    with open(password_file, "rb") as file:
        password = file.read().strip()

    def authenticator(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        # handled=False: aiosmtpd answers 535 itself when the credentials are wrong.
        return AuthResult(success=auth_data.login == username and auth_data.password == password, handled=False)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    options = dict(hostname="127.0.0.1", port=0, authenticator=authenticator, server_hostname="localhost")
    if starttls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options.update(tls_context=context, require_starttls=True, auth_require_tls=True)
    else:
        options.update(auth_require_tls=False)
    # Port 0 is not supported by every aiosmtpd release: find a free port first.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        options["port"] = probe.getsockname()[1]
    controller = Controller(Handler(), **options)
    controller.start()
    print(f"ready {options['port']}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
