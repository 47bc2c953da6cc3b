"""The stock tritonclient (http and grpc) against `kiln serve` over TLS and
mutual TLS (issue 17).

The certificates are made by the test with the example `test_certs`
(tests/e2e/certs.rs, rcgen; the Python side has no certificate library):
the binary KILN_TEST_CERTS names, else target/debug/examples/test_certs
(`cargo test` builds it), else through `cargo run`. A CA, a server certificate for localhost, a
client certificate from the CA, and a client certificate from another CA.
Run by scripts/test.sh; KILN names the server binary.
"""

import os
import pathlib
import ssl
import subprocess

import gevent.ssl
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

ROOT = pathlib.Path(__file__).resolve().parents[2]
KILN = os.environ.get("KILN", str(ROOT / "target" / "debug" / "kiln"))
KEY = "tls-python-key-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    tool = os.environ.get("KILN_TEST_CERTS", str(ROOT / "target" / "debug" / "examples" / "test_certs"))
    if pathlib.Path(tool).exists():
        cmd = [tool]
    else:
        cmd = ["cargo", "run", "-q", "--locked", "-p", "kiln", "--example", "test_certs", "--"]
    subprocess.run([*cmd, str(d)], check=True, cwd=ROOT)
    return d


def start(d, certs, mutual):
    (d / "kiln.toml").write_text(
        f'[server]\ncache_dir = "{d / "cache"}"\n'
        f'[[keys]]\nkey = "{KEY}"\nmodels = ["*"]\n')
    args = [KILN, "serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
            "--config", str(d / "kiln.toml"),
            "--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key")]
    if mutual:
        args += ["--tls-client-ca", str(certs / "ca.pem")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                            stderr=open(d / "serve.log", "w"), text=True)
    first = proc.stdout.readline()
    if not first.startswith("kiln serve:"):
        proc.kill()
        pytest.fail(f"kiln serve did not start: {first!r} {(d / 'serve.log').read_text()}")
    addrs = dict(w.split("=", 1) for w in first.split()[2:])
    # The certificate names localhost: connect by that name.
    port = lambda a: a.rsplit(":", 1)[1]
    return proc, f"localhost:{port(addrs['http'])}", f"localhost:{port(addrs['grpc'])}"


@pytest.fixture(scope="module", params=["tls", "mtls"])
def server(request, tmp_path_factory, certs):
    mutual = request.param == "mtls"
    proc, http, grpc = start(tmp_path_factory.mktemp(request.param), certs, mutual)
    yield {"http": http, "grpc": grpc, "mutual": mutual}
    proc.terminate()
    assert proc.wait(timeout=20) == 0


def http_client(url, certs, client=None, ca="ca.pem"):
    opts = {"ca_certs": str(certs / ca)}
    if client:
        opts.update(certfile=str(certs / f"{client}.pem"), keyfile=str(certs / f"{client}.key"))
    return httpclient.InferenceServerClient(
        url, ssl=True, ssl_options=opts, ssl_context_factory=gevent.ssl.create_default_context)


def grpc_client(url, certs, client=None, ca="ca.pem"):
    kw = {}
    if client:
        kw = {"private_key": str(certs / f"{client}.key"),
              "certificate_chain": str(certs / f"{client}.pem")}
    return grpcclient.InferenceServerClient(
        url, ssl=True, root_certificates=str(certs / ca), **kw)


ROW = np.arange(64, dtype=np.float32).reshape(1, 64) / 4


def infer(module, client):
    x = module.InferInput("input", [1, 64], "FP32")
    x.set_data_from_numpy(ROW)
    # A copy: the http client adds its own headers to the dict.
    return client.infer("digits", [x], headers=dict(AUTH)).as_numpy("scores")


def test_both_protocols_answer_over_tls_with_the_same_bits(server, certs):
    client = "client" if server["mutual"] else None
    h = http_client(server["http"], certs, client)
    g = grpc_client(server["grpc"], certs, client)
    assert h.is_server_live() and g.is_server_live()
    a, b = infer(httpclient, h), infer(grpcclient, g)
    assert a.shape == (1, 10)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_a_server_the_client_does_not_trust_is_refused(server, certs):
    # The client trusts only the other CA: the server's certificate fails.
    client = "client" if server["mutual"] else None
    with pytest.raises(Exception, match="(?i)certificate|ssl|unavailable|handshake"):
        http_client(server["http"], certs, client, ca="other-ca.pem").is_server_live()
    with pytest.raises(Exception, match="(?i)certificate|ssl|unavailable|handshake"):
        grpc_client(server["grpc"], certs, client, ca="other-ca.pem").is_server_live()


@pytest.mark.parametrize("client", [None, "other-client"], ids=["no-cert", "wrong-ca"])
def test_mutual_tls_refuses_clients_without_a_certificate_of_the_ca(server, certs, client):
    if not server["mutual"]:
        # Without a client CA, a client certificate is neither asked nor needed.
        assert http_client(server["http"], certs, client).is_server_live()
        assert grpc_client(server["grpc"], certs, client).is_server_live()
        return
    # Refused in the handshake: the client reads the server's alert
    # (CERTIFICATE_REQUIRED without a certificate, UNKNOWN_CA with another
    # CA's), or a reset connection if it wrote its request first.
    with pytest.raises((ssl.SSLError, ConnectionError)) as e:
        http_client(server["http"], certs, client).is_server_live()
    with pytest.raises(Exception) as e:
        grpc_client(server["grpc"], certs, client).is_server_live()
    assert "UNAVAILABLE" in str(e.value) or "StatusCode.UNAVAILABLE" in repr(e.value), e.value
