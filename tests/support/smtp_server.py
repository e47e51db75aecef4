"""A real SMTP server for the black-box tests, built on aiosmtpd (installed by .ci/run).

Usage: python3 smtp_server.py --port PORT --out FILE [--user U --password P] [--reject ADDR]...

Appends one JSON line per message to FILE: envelope sender and recipients, the parsed subject
and body, the raw message, and the login it authenticated with. With --user, AUTH (PLAIN or
LOGIN, over plain text since the tests have no certificate) is required before MAIL. Each
--reject address is refused at RCPT with a 550, as a server refuses an unknown mailbox.
Prints READY when it listens; stops on SIGTERM or when stdin closes.
"""

import argparse
import email
import logging
import email.policy
import json
import signal
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
        }
        with self.lock, open(self.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--reject", action="append", default=[])
    args = parser.parse_args()
    # Plain-text AUTH is what these tests want: no certificate on loopback. Keep stderr quiet.
    warnings.filterwarnings("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        # handled=False: aiosmtpd then answers a failure with its 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    options = {}
    if args.user:
        options = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
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
