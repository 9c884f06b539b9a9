"""TLS material for a cluster: one CA per cluster, one certificate per node.

Consensus messages are signed with Ed25519 already, so TLS adds what signatures do not:
confidentiality (licence terms and royalty reports cross the network) and a door that
opens only for the cluster's own nodes. Each node's certificate is both a server and a
client certificate (mutual TLS between peers) and names the node's address (IP or DNS)
as its subjectAltName. Keys are ECDSA P-256: every TLS stack speaks it.

Rotation: certificates are valid for `days` (default 825, the CA/Browser ceiling); to
rotate, issue new node certificates from the same CA (`issue_node_cert`) and restart
nodes one at a time — peers keep trusting the CA, so the cluster never loses quorum.
Rotating the CA itself means distributing a bundle that trusts both CAs first.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DAYS = 825


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str, cluster: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"ipchain {cluster}"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_ca(cluster: str, now: dt.datetime, days: int = DEFAULT_DAYS * 4) -> Pem:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"ipchain {cluster} CA", cluster)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue_node_cert(ca: Pem, cluster: str, node_id: str, hosts: list[str], now: dt.datetime,
                    days: int = DEFAULT_DAYS) -> Pem:
    """A certificate for `node_id` reachable at `hosts`, signed by the cluster's CA."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    names = sorted(set(hosts))
    cert = (x509.CertificateBuilder().subject_name(_name(node_id, cluster))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def not_after(cert_pem: bytes) -> dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
