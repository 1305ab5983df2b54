"""A private CA for HTTPS tests, and a way to make tccli trust it without editing its venv.

tccli (through the SDK) verifies with `certifi.where()` and ignores REQUESTS_CA_BUNDLE and
SSL_CERT_FILE (spec trap 11). A `sitecustomize` on PYTHONPATH points `certifi.where` at a
bundle made of certifi's roots plus our CA, for that one subprocess only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path
    bundle_file: Path
    sitecustomize_dir: Path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost", "cwp.local.test")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    server_cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in server_cert.cert_chain_pems))
    bundle_file = directory / "bundle.pem"
    bundle_file.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca_file.read_bytes())
    site_dir = directory / "site"
    site_dir.mkdir(exist_ok=True)
    (site_dir / "sitecustomize.py").write_text(
        f"import certifi\ncertifi.where = lambda: {str(bundle_file)!r}\n", encoding="utf-8"
    )
    return Pki(ca_file, cert_file, key_file, bundle_file, site_dir)
