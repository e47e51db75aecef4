"""A real SMTP server for the black-box tests, built on aiosmtpd (installed by .ci/run).

Usage: python3 smtp_server.py --port PORT --out FILE [--user U --password P] [--reject ADDR]...
                               [--tls implicit|starttls --cert PEM --key PEM]

Appends one JSON line per message to FILE: envelope sender and recipients, the parsed subject
and body, the raw message, the login it authenticated with, and the TLS version the session
ran over (null for plain SMTP). Each AUTH attempt's login is appended to FILE.logins, so a test
can tell that a password never crossed a plain connection. With --user, AUTH (PLAIN or LOGIN)
is required before MAIL. Each --reject address is refused at RCPT with a 550, as a server
refuses an unknown mailbox. --tls implicit serves TLS from the first byte (smtps, port 465);
--tls starttls offers STARTTLS and refuses MAIL and AUTH before it, with the certificate and
key files given. Prints READY when it listens; stops on SIGTERM or when stdin closes.
"""

import argparse
import email
import logging
import email.policy
import json
import signal
import ssl
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, out, reject):
        self.out = out
        self.reject = {address.lower() for address in reject}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: no such mailbox here" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "body": body.get_content() if body is not None else "",
            "raw": envelope.content.decode("utf-8", errors="replace"),
            "login": login,
            "tls": tls_version(server),
        }
        with self.lock, open(self.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return "250 Message accepted for delivery"


def tls_version(server):
    """The TLS version of the session ("TLSv1.3"), or None for plain SMTP. After STARTTLS
    the transport is aiosmtpd's TLS one; with implicit TLS it was TLS from the start."""
    ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
    return ssl_object.version() if ssl_object is not None else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--reject", action="append", default=[])
    parser.add_argument("--tls", choices=["implicit", "starttls"])
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    # Plain-text AUTH is what most tests want. Keep stderr quiet.
    warnings.filterwarnings("ignore")
    # A client that refuses the certificate is what some tests want: no traceback for it.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    logins = threading.Lock()

    def authenticator(server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
        with logins, open(args.out + ".logins", "a", encoding="utf-8") as out:
            out.write(json.dumps({"login": login, "tls": tls_version(server)}) + "\n")
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        # handled=False: aiosmtpd then answers a failure with its 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    options = {}
    if args.user:
        # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; implicit TLS is TLS too.
        require_tls = args.tls == "starttls"
        options = dict(authenticator=authenticator, auth_required=True, auth_require_tls=require_tls)
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.tls == "implicit":
            options["ssl_context"] = context
        else:
            options.update(tls_context=context, require_starttls=True)
    controller = Controller(
        Recorder(args.out, args.reject), hostname="127.0.0.1", port=args.port, **options
    )
    controller.start()
    print("READY", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
