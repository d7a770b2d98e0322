"""Build chalicelib/certs/rds-ca-bundle.pem: the CAs a verify-full connection to
RDS Proxy (or straight to the database) must trust.

- RDS Proxy presents an ACM certificate, which chains to the Amazon Trust Services
  roots (Amazon Root CA 1-4, Starfield Services Root CA G2): taken from certifi's
  Mozilla bundle (installed with botocore).
- A direct connection to an RDS/Aurora instance presents a certificate of the RDS
  CAs (rds-ca-rsa2048-g1, ...): AWS's RDS global bundle, given as a file.

    python scripts/rds_ca_bundle.py /path/to/global-bundle.pem

Certificates that have expired are left out. See docs/deploy.md ("TLS to RDS Proxy")
for where the deploy gets the RDS global bundle from.
"""

from __future__ import annotations

import re
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "chalicelib" / "certs" / "rds-ca-bundle.pem"
AMAZON_TRUST_ROOTS = (
    "Amazon Root CA 1",
    "Amazon Root CA 2",
    "Amazon Root CA 3",
    "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2",
)
PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _certs(text: str) -> list[tuple[x509.Certificate, str]]:
    with warnings.catch_warnings():  # certifi holds old roots with negative serials
        warnings.simplefilter("ignore")
        return [(x509.load_pem_x509_certificate(m.encode()), m) for m in PEM.findall(text)]


def _name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def build(rds_bundle: Path, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    parts: list[str] = []
    seen: set[bytes] = set()
    amazon = [
        (c, pem)
        for c, pem in _certs(Path(certifi.where()).read_text())
        if _name(c) in AMAZON_TRUST_ROOTS
    ]
    if {_name(c) for c, _ in amazon} != set(AMAZON_TRUST_ROOTS):
        raise SystemExit("certifi's bundle lacks an Amazon Trust Services root")
    rds = _certs(rds_bundle.read_text())
    if not rds:
        raise SystemExit(f"no certificate in {rds_bundle}")
    for cert, pem in [*amazon, *rds]:
        fingerprint = cert.fingerprint(hashes.SHA256())
        if cert.not_valid_after_utc <= now or fingerprint in seen:
            continue
        seen.add(fingerprint)
        parts.append(f"# {_name(cert)} (until {cert.not_valid_after_utc:%Y-%m-%d})\n{pem}\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(build(Path(argv[1])))
    print(f"wrote {OUT} ({OUT.read_text().count('BEGIN CERTIFICATE')} certificates)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
