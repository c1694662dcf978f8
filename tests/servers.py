"""Servers a test starts and stops itself, on free ports, so fault tests never touch the
machine's shared PostgreSQL or Redis."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import ldap3
import redis

from .smtp import free_port


def wait_for_port(
    host: str, port: int, process: subprocess.Popen[bytes], name: str, seconds: float
) -> None:
    """Until ``process`` takes connections on ``port``; RuntimeError if it dies or is late."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{name} did not start on {host}:{port}") from None
            time.sleep(0.05)


class RedisServer:
    """A private ``redis-server`` (Debian's) that keeps nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="helpdesk-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _postgres_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (Debian: postgresql)")
    return str(found[-1])


class PostgresServer:
    """A private PostgreSQL cluster (Debian's binaries) in a temporary folder, trust auth,
    on a free port; run as the ``postgres`` user when the tests run as root."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="helpdesk-pg-"))
        self.data = self.folder / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run([_postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U",
                   "postgres", "--no-sync", "-E", "UTF8"])  # fmt: skip

    def _run(self, command: list[str]) -> None:
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([_postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                   "-l", str(self.folder / "log"), "start"])  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop at once, as a crash or a restart would: every connection is dropped."""
        self._run([_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                   "stop"])  # fmt: skip

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class SilentServer:
    """Accepts TCP connections and never says a word: a mail server that hangs."""

    def __init__(self) -> None:
        import socket
        import threading

        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.held:
            connection.close()


def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate (and its key) for ``host``, its own CA: the tests' CA file."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    key_path.chmod(0o600)  # Samba refuses a key others can read (CVE-2013-4476)
    return cert_path, key_path


SLAPD_BASE = "dc=school,dc=example"
SLAPD_ADMIN = f"cn=admin,{SLAPD_BASE}"
SLAPD_SERVICE = f"cn=helpdesk,{SLAPD_BASE}"


class SlapdServer:
    """A private OpenLDAP (Debian's slapd) with the ppolicy overlay, on LDAPS and plain
    LDAP (for StartTLS) on free ports, its certificate its own CA."""

    def __init__(self, people: list[dict[str, str]], service_password: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="helpdesk-slapd-"))
        self.port, self.plain_port = free_port(), free_port()
        self.ca_file, key = self_signed_certificate(self.folder)
        self.admin_password = "slapd-admin-" + os.urandom(6).hex()
        (self.folder / "db").mkdir()
        schema = Path("/etc/ldap/schema")
        (self.folder / "slapd.conf").write_text(f"""
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {self.folder}/slapd.pid
TLSCertificateFile {self.ca_file}
TLSCertificateKeyFile {key}
database mdb
suffix "{SLAPD_BASE}"
rootdn "{SLAPD_ADMIN}"
rootpw {self.admin_password}
directory {self.folder}/db
maxsize 67108864
access to attrs=userPassword
    by dn.exact="{SLAPD_SERVICE}" write by self write by anonymous auth by * none
access to * by dn.exact="{SLAPD_SERVICE}" write by self read by users read by * none
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{SLAPD_BASE}"
ppolicy_hash_cleartext
ppolicy_use_lockout
""")  # fmt: skip
        entries = [
            f"""dn: {SLAPD_BASE}
objectClass: dcObject
objectClass: organization
o: School
dc: school

dn: ou=people,{SLAPD_BASE}
objectClass: organizationalUnit
ou: people

dn: ou=policies,{SLAPD_BASE}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{SLAPD_BASE}
objectClass: applicationProcess
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdMustChange: TRUE
pwdLockout: TRUE
pwdMaxFailure: 5
pwdInHistory: 3

dn: {SLAPD_SERVICE}
objectClass: person
cn: helpdesk
sn: helpdesk
userPassword: {service_password}
"""
        ]
        for person in people:
            entries.append(f"""dn: uid={person['uid']},ou=people,{SLAPD_BASE}
objectClass: inetOrgPerson
uid: {person['uid']}
cn: {person['cn']}
sn: {person['sn']}
employeeNumber: {person.get('number', '')}
userPassword: {person['password']}
""")  # fmt: skip
        (self.folder / "data.ldif").write_text("\n".join(entries))
        config, data = str(self.folder / "slapd.conf"), str(self.folder / "data.ldif")
        subprocess.run(["/usr/sbin/slapadd", "-f", config, "-l", data], check=True,
                       capture_output=True)  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldaps://127.0.0.1:{self.port}"

    def start(self) -> SlapdServer:
        urls = f"ldaps://127.0.0.1:{self.port}/ ldap://127.0.0.1:{self.plain_port}/"
        self.process = subprocess.Popen(
            ["/usr/sbin/slapd", "-h", urls, "-f", str(self.folder / "slapd.conf"), "-d", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port("127.0.0.1", self.port, self.process, "slapd", seconds=15)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def admin(self) -> ldap3.Connection:
        """A connection as the directory's own administrator, to look at what changed."""
        server = ldap3.Server("127.0.0.1", port=self.port, use_ssl=True, get_info=ldap3.NONE,
                              tls=ldap3.Tls(validate=ssl.CERT_REQUIRED,
                                            ca_certs_file=str(self.ca_file)))  # fmt: skip
        return ldap3.Connection(server, SLAPD_ADMIN, self.admin_password, auto_bind=True)

    def bind_result(self, uid: str, password: str) -> int:
        """What binding as ``uid`` with ``password`` gives: 0 accepted, 49 refused."""
        server = ldap3.Server("127.0.0.1", port=self.port, use_ssl=True, get_info=ldap3.NONE,
                              tls=ldap3.Tls(validate=ssl.CERT_REQUIRED,
                                            ca_certs_file=str(self.ca_file)))  # fmt: skip
        conn = ldap3.Connection(server, f"uid={uid},ou=people,{SLAPD_BASE}", password)
        conn.bind()
        result = int(conn.result["result"])
        conn.unbind()
        return result

    def attribute(self, uid: str, name: str) -> list[str]:
        conn = self.admin()
        conn.search(f"uid={uid},ou=people,{SLAPD_BASE}", "(objectClass=*)",
                    search_scope=ldap3.BASE, attributes=[name, "+"])  # fmt: skip
        values = conn.entries[0].entry_attributes_as_dict.get(name, []) if conn.entries else []
        conn.unbind()
        return [str(v) for v in values]

    def modify(self, uid: str, changes: dict) -> None:
        conn = self.admin()
        conn.modify(f"uid={uid},ou=people,{SLAPD_BASE}", changes)
        conn.unbind()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class ScimServer:
    """scim2-server's SCIM 2.0 application, in memory, behind a small WSGI app of the
    tests that can answer 503 instead (``failing``), served from a thread on a free port."""

    def __init__(self, token: str) -> None:
        import secrets
        import threading
        from socketserver import ThreadingMixIn
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        from scim2_models import ScimProvider
        from scim2_server.memory import InMemoryStorage
        from scim2_server.service import ScimService
        from scim2_server.testserver.application import (
            BEARER_TOKEN_SCHEME,
            BearerTokenApplication,
        )
        from scim2_server.utils import (
            load_default_resource_types,
            load_default_schemas,
            load_default_service_provider_config,
        )

        config = load_default_service_provider_config()
        config.authentication_schemes = [*(config.authentication_schemes or []),
                                         BEARER_TOKEN_SCHEME]  # fmt: skip
        provider = ScimProvider.from_discovery(
            load_default_schemas().values(), load_default_resource_types().values(),
            config=config,
        )  # fmt: skip
        self.storage = InMemoryStorage()
        self.scim = BearerTokenApplication(
            self.storage, provider, service=ScimService(provider, secret=secrets.token_hex(16)),
            bearer_tokens=[token],
        )  # fmt: skip
        self.failing = False

        def app(environ: dict, start_response: Any) -> Any:
            if self.failing:
                start_response("503 Service Unavailable", [("Content-Type", "application/json")])
                return [b'{"detail": "down for maintenance", "status": "503"}']
            return self.scim(environ, start_response)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        class Threading(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        self.server = make_server("127.0.0.1", 0, app, server_class=Threading,
                                  handler_class=Quiet)  # fmt: skip
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.token = token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, self.url + path, headers=headers, timeout=5, **kwargs)

    def add_user(self, user_name: str, password: str) -> str:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name,
                "password": password, "active": True}  # fmt: skip
        answer = self.request("POST", "/Users", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def password_is(self, user_name: str, password: str) -> bool:
        """The SCIM read the acceptance asks for: does the user hold this password?"""
        query = f'userName eq "{user_name}" and password eq "{password}"'
        return int(self.request("GET", "/Users", params={"filter": query}).json()
                   ["totalResults"]) == 1  # fmt: skip

    def user(self, user_name: str) -> dict:
        found = self.request("GET", "/Users", params={"filter": f'userName eq "{user_name}"'})
        return dict(found.json()["Resources"][0])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SAMBA_REALM, SAMBA_DOMAIN = "SCHOOL.TEST", "SCHOOL"
SAMBA_BASE = "DC=school,DC=test"


class SambaDC:
    """Samba as an Active Directory domain controller (Debian's samba), provisioned in a
    temporary folder and serving LDAPS only, on an address of its own in 127.0.0.0/8
    (its ports are fixed: 389 and 636), with a certificate for that address."""

    def __init__(self, address: str = "127.0.0.9") -> None:
        self.address = address
        self.folder = Path(tempfile.mkdtemp(prefix="helpdesk-samba-"))
        self.admin_password = "Admin-" + os.urandom(6).hex() + "-Pw1"
        folder = self.folder
        options = [
            f"interfaces={address}/8", "bind interfaces only=yes", "server services=ldap",
            "dns forwarder=", f"pid directory={folder}/run", f"ncalrpc dir={folder}/ncalrpc",
            f"ntp signd socket directory={folder}/ntp_signd",
            f"winbindd socket directory={folder}/winbindd", f"log file={folder}/log.%m",
        ]  # fmt: skip
        command = ["samba-tool", "domain", "provision", f"--targetdir={folder}",
                   f"--realm={SAMBA_REALM}", f"--domain={SAMBA_DOMAIN}", "--server-role=dc",
                   "--dns-backend=NONE", f"--adminpass={self.admin_password}",
                   "--host-name=dc1", *(f"--option={option}" for option in options)]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=300)
        self.ca_file, key = self_signed_certificate(folder, host=address)
        config = folder / "etc" / "smb.conf"
        text = config.read_text().replace(
            "[global]",
            f"[global]\n\ttls enabled = yes\n\ttls keyfile = {key}\n\ttls certfile = "
            f"{self.ca_file}\n\ttls cafile = \n",
            1,
        )
        config.write_text(text)
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldaps://{self.address}:636"

    def start(self) -> SambaDC:
        self.process = subprocess.Popen(
            ["samba", "-i", "-M", "single", "-s", str(self.config)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.address, 636, self.process, "samba", seconds=60)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # with -i, samba ends when its stdin does
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def connection(self, user: str | None = None, password: str | None = None) -> Any:
        server = ldap3.Server(self.address, port=636, use_ssl=True, get_info=ldap3.NONE,
                              tls=ldap3.Tls(validate=ssl.CERT_REQUIRED,
                                            ca_certs_file=str(self.ca_file)))  # fmt: skip
        return ldap3.Connection(server, user or f"Administrator@{SAMBA_REALM.lower()}",
                                password or self.admin_password)  # fmt: skip

    def admin(self) -> Any:
        conn = self.connection()
        conn.bind()
        assert conn.result["result"] == 0, conn.result
        return conn

    def add_user(self, name: str, password: str) -> str:
        dn = f"CN={name},CN=Users,{SAMBA_BASE}"
        conn = self.admin()
        principal = f"{name}@{SAMBA_REALM.lower()}"
        conn.add(dn, ["top", "person", "organizationalPerson", "user"],
                 {"sAMAccountName": name, "userPrincipalName": principal})  # fmt: skip
        assert conn.result["result"] == 0, conn.result
        conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE,
                                         [f'"{password}"'.encode("utf-16-le")])],
                         "userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])]})  # fmt: skip
        assert conn.result["result"] == 0, conn.result
        conn.unbind()
        return dn

    def bind_result(self, name: str, password: str) -> str:
        """'ok', or AD's reason code: 52e wrong password, 773 must change, 533 disabled."""
        conn = self.connection(f"{name}@{SAMBA_REALM.lower()}", password)
        conn.bind()
        if conn.result["result"] == 0:
            conn.unbind()
            return "ok"
        message = conn.result.get("message", "")
        for code in ("52e", "773", "533", "775", "532"):
            if f"data {code}" in message:
                return code
        return message

    def attribute(self, name: str, attribute: str) -> list[str]:
        conn = self.admin()
        conn.search(SAMBA_BASE, f"(sAMAccountName={name})", attributes=[attribute])
        values = [str(v) for v in conn.entries[0][attribute].values] if conn.entries else []
        conn.unbind()
        return values

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class OidcProvider:
    """node-oidc-provider (the certified OpenID Connect implementation, from npm), run by
    Node.js on a free port with its development sign-in page: any login signs in, with
    the claims ``accounts`` gives it, else email = the login, verified."""

    SCRIPT = Path(__file__).resolve().parent / "oidc" / "provider.mjs"

    def __init__(self, redirect_uri: str, accounts: dict[str, dict[str, Any]] | None = None):
        self.port = free_port()
        self.client_id = "helpdesk"
        self.client_secret = secrets.token_urlsafe(32)
        self.redirect_uri = redirect_uri
        self.accounts = accounts or {}
        self.folder = Path(tempfile.mkdtemp(prefix="helpdesk-oidc-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OidcProvider:
        config = self.folder / "config.json"
        config.write_text(json.dumps({
            "port": self.port, "client_id": self.client_id,
            "client_secret": self.client_secret, "redirect_uri": self.redirect_uri,
            "accounts": self.accounts,
        }))  # fmt: skip
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is not installed: the OpenID provider runs on it")
        with (self.folder / "provider.log").open("wb") as log:
            self.process = subprocess.Popen(
                [node, str(self.SCRIPT), str(config)], stdout=log, stderr=subprocess.STDOUT,
                cwd=self.SCRIPT.parent.parent.parent,  # where node_modules/oidc-provider is
            )  # fmt: skip
        wait_for_port("127.0.0.1", self.port, self.process, "oidc-provider", 30)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
