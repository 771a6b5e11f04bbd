"""The Salesforce stand-in over HTTPS on loopback, for tests where the plugin runs in another process.

Why: simple-salesforce always speaks https to `https://<instance>/...`. In-process tests swap its HTTP session
for the stand-in's URL-rewriting one; a `crmrules serve` subprocess cannot be handed a session object, so the
stand-in gets a throw-away self-signed certificate for 127.0.0.1 instead, and the subprocess trusts it through
`REQUESTS_CA_BUNDLE`. The plugin then runs exactly as in production, with `SALESFORCE_INSTANCE_URL` pointing at
`https://127.0.0.1:<port>`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server

from ..support.servers import RunningServer, _QuietHandler


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid for a day; the certificate is its own CA."""

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crmrules test stand-in")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "standin-cert.pem", folder / "standin-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsServer(RunningServer):
    """A RunningServer whose `url` is https."""

    def __init__(self, server: Any, app: Any, host: str, ca_file: Path):
        super().__init__(server, app, host)
        self.url = f"https://{host}:{self.port}"
        self.ca_file = ca_file


def serve_tls(app: Any, folder: Path) -> TlsServer:
    cert, key = self_signed(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler, ssl_context=context)
    running = TlsServer(server, app, "127.0.0.1", cert)
    running.on_stop(app.config["STATE"].cancel_delays)
    return running
