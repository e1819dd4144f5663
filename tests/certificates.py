"""Certificates for the TLS tests, made with `cryptography` at run time (no key material
in the repository, nothing that expires): a CA, a server certificate for localhost and
127.0.0.1, a client certificate, and a second CA with a client of its own."""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _certificate(name, key, issuer_name, issuer_key, is_ca=False, hosts=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost")] + [x509.IPAddress(ipaddress.ip_address(h)) for h in hosts]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki():
    """PEM texts: ca, server_key/server_cert (localhost, 127.0.0.1), client_key/client_cert,
    other_ca and other_client_key/other_client_cert (signed by other_ca)."""
    made, ca_keys = {}, {}
    for ca in ("ca", "other_ca"):
        ca_keys[ca] = _key()
        made[ca] = _cert_pem(_certificate(ca, ca_keys[ca], ca, ca_keys[ca], is_ca=True))
    for name, subject, ca, hosts in (("server", "localhost", "ca", ("127.0.0.1",)), ("client", "client", "ca", ()),
                                     ("other_client", "stranger", "other_ca", ())):
        key = _key()
        made[f"{name}_key"] = _key_pem(key)
        made[f"{name}_cert"] = _cert_pem(_certificate(subject, key, ca, ca_keys[ca], hosts=hosts))
    return made


def ssl_text_proto(fields):
    """An SSLConfig text proto; string values are written with escaped newlines."""
    lines = []
    for name, value in fields.items():
        if isinstance(value, bool):
            lines.append(f"{name}: {'true' if value else 'false'}")
        else:
            lines.append(f'{name}: "{value.encode("unicode_escape").decode()}"')
    return "\n".join(lines) + "\n"
