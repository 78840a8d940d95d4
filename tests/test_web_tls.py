"""HTTPS served by `appliance web` itself, with a certificate like the local CA's."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.demo_chat import appliance_process
from appliance.settings import Settings, SettingsError, load_settings


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the test's stand-in for the clinic CA's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appliance.clinic.lan")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.mark.slow
def test_the_web_process_serves_https_with_the_configured_certificate(
    settings: Settings, tmp_path: Path
) -> None:
    cert, key = _certificate(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(
        APPLIANCE_DATA_DIR=str(settings.data_dir),
        APPLIANCE_DATABASE__URL=settings.database.url or "",
        APPLIANCE_WEB__TLS_CERT_FILE=str(cert),
        APPLIANCE_WEB__TLS_KEY_FILE=str(key),
    )

    trust = ssl.create_default_context(cafile=str(cert))

    def ready(base: str) -> bool:
        url = base.replace("http://", "https://")
        return httpx.get(f"{url}/health/live", verify=trust).status_code == 200

    with appliance_process("web", env, tmp_path / "web.log", ready, wait_seconds=60) as base:
        https = base.replace("http://", "https://")
        assert httpx.get(f"{https}/health/ready", verify=trust).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{base}/health/live", timeout=5)  # plain HTTP is not served at all


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="go together"):
        load_settings(data_dir=tmp_path, web={"tls_cert_file": "/x.crt"})
