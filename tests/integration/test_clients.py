"""Real SOCKS clients against the server: curl, PySocks, python-socks,
proxychains4, Dante's socksify and headless Chromium.

Names (web.stp.test, ...) are only ever resolved by the proxy: through the
test dnsmasq (stpd --resolver) or the proxy's private /etc/hosts. A URL
handed to a client that resolves locally (socks5://, socks4://, socksify,
proxychains with proxy_dns off) always holds an IP literal.
"""

import asyncio
import hashlib
import os
import re
import shutil
import subprocess

import pytest

import services
import socksraw

PAGE = services.PAGE
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                                  "socks_proxy", "socks5_proxy")}


def curl(*args, timeout=60, env=None):
    e = dict(CLEAN_ENV)
    e.update(env or {})
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout - 5), "--noproxy", ""]
                          + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, env=e)


def target_rx(host, port):
    """Regex for target=HOST:PORT in stpd's session line; IPv6 may be
    written with or without brackets."""
    if ":" in host:
        return r"target=(\[%s\]|%s):%d\b" % (re.escape(host), re.escape(host), port)
    return r"target=%s:%d\b" % (re.escape(host), port)


def assert_via_proxy(proxy, host, port, since=0, cmd="connect"):
    """stpd only: the session line proves the traffic went through it."""
    if not proxy.has("logs"):
        return None
    return proxy.wait_log(r"session .*cmd=%s .*%s" % (cmd, target_rx(host, port)),
                          timeout=10, since=since)


def assert_dns_asked(dns, name, since):
    """stpd only: the proxy resolved the name through the test dnsmasq."""
    with open(dns.log_path, "rb") as f:
        text = f.read()[since:].decode(errors="replace")
    assert re.search(r"query\[(A|AAAA)\] %s from 127\.0\.0\.1" % re.escape(name), text), \
        "dnsmasq was not asked for %s:\n%s" % (name, text[-2000:])


def dns_mark(dns):
    return os.path.getsize(dns.log_path)


# ---------------------------------------------------------------------------
# curl


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_curl_socks5_ip(proxy, http, host):
    url_host = "[%s]" % host if ":" in host else host
    r = curl("-x", "socks5://127.0.0.1:%d" % proxy.port, "http://%s:%d/" % (url_host, http.port))
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAGE
    assert_via_proxy(proxy, host, http.port)


@pytest.mark.parametrize("name", ["web.stp.test", "web6.stp.test", "both.stp.test"])
def test_curl_socks5h_name_resolved_by_proxy(proxy, http, dns, name):
    proxy.require("domain")
    mark = dns_mark(dns)
    r = curl("-x", "socks5h://127.0.0.1:%d" % proxy.port, "http://%s:%d/" % (name, http.port))
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAGE
    if proxy.has("resolver"):
        assert_dns_asked(dns, name, mark)
        assert_via_proxy(proxy, name, http.port)


def test_curl_socks5h_nxdomain_fails(proxy, http):
    proxy.require("domain")
    r = curl("-x", "socks5h://127.0.0.1:%d" % proxy.port,
             "http://%s:%d/" % (services.NXDOMAIN_NAME, http.port), timeout=30)
    # 97 = CURLE_PROXY: the proxy refused the request (curl >= 7.73)
    assert r.returncode == 97, (r.returncode, r.stderr)
    assert r.stdout == b""


def test_curl_socks4(proxy, http):
    proxy.require("socks4")
    r = curl("-x", "socks4://127.0.0.1:%d" % proxy.port, "http://127.0.0.1:%d/" % http.port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAGE
    assert_via_proxy(proxy, "127.0.0.1", http.port)


def test_curl_socks4a(proxy, http):
    proxy.require("socks4a", "domain")
    r = curl("-x", "socks4a://127.0.0.1:%d" % proxy.port, "http://web.stp.test:%d/" % http.port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAGE
    assert_via_proxy(proxy, "web.stp.test", http.port)


USERS = {"alice": "c0rrect horse:battery"}


def test_curl_userpass(proxy_factory, http):
    p = proxy_factory(users=USERS)
    p.require("userpass")
    base = ["-x", "socks5h://127.0.0.1:%d" % p.port]
    url = "http://web.stp.test:%d/" % http.port
    r = curl(*base, "--proxy-user", "alice:" + USERS["alice"], url)
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAGE
    if p.has("logs"):
        p.wait_log(r"session .*user=alice .*" + target_rx("web.stp.test", http.port))

    r = curl(*base, "--proxy-user", "alice:wrong", url)
    assert r.returncode == 97, (r.returncode, r.stderr)   # CURLE_PROXY
    assert r.stdout == b""

    r = curl(*base, url)   # no credentials: the server must not pick method 00
    assert r.returncode == 97, (r.returncode, r.stderr)
    assert r.stdout == b""


def test_curl_100mb_sha256(proxy, http):
    proxy.require("domain")
    size = 100 * 1024 * 1024
    e = dict(CLEAN_ENV)
    p = subprocess.Popen(["curl", "-sS", "--max-time", "240", "-x",
                          "socks5h://127.0.0.1:%d" % proxy.port,
                          "http://web.stp.test:%d/big/%d" % (http.port, size)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    h = hashlib.sha256()
    n = 0
    while True:
        c = p.stdout.read(1 << 20)
        if not c:
            break
        h.update(c)
        n += len(c)
    err = p.stderr.read()
    assert p.wait(30) == 0, err
    assert n == size
    assert h.hexdigest() == services.BigContent.sha256(size)
    if proxy.has("logs"):
        m = proxy.wait_log(r"session .*" + target_rx("web.stp.test", http.port)
                           + r".* down=(\d+)", timeout=10)
        assert int(m.group(m.lastindex)) > size  # body + HTTP header


# ---------------------------------------------------------------------------
# Python clients


def http_get(sock, host, port, path="/"):
    sock.sendall(("GET %s HTTP/1.0\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode())
    data = socksraw.recv_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_pysocks_socks5_remote_dns(proxy, http):
    proxy.require("domain")
    import socks
    s = socks.socksocket()
    s.settimeout(15)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy.port, rdns=True)
    try:
        s.connect(("web.stp.test", http.port))
        head, body = http_get(s, "web.stp.test", http.port)
    finally:
        s.close()
    assert re.match(rb"HTTP/1\.[01] 200 ", head), head
    assert body == PAGE
    assert_via_proxy(proxy, "web.stp.test", http.port)


def test_pysocks_socks5_userpass(proxy_factory, http):
    p = proxy_factory(users=USERS)
    p.require("userpass")
    import socks
    s = socks.socksocket()
    s.settimeout(15)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", p.port, rdns=False,
                username="alice", password=USERS["alice"])
    try:
        s.connect(("127.0.0.1", http.port))
        head, body = http_get(s, "127.0.0.1", http.port)
    finally:
        s.close()
    assert body == PAGE
    bad = socks.socksocket()
    bad.settimeout(15)
    bad.set_proxy(socks.SOCKS5, "127.0.0.1", p.port, username="alice", password="nope")
    with pytest.raises(socks.ProxyError):
        bad.connect(("127.0.0.1", http.port))
    bad.close()


def test_pysocks_socks4(proxy, http):
    proxy.require("socks4")
    import socks
    s = socks.socksocket()
    s.settimeout(15)
    s.set_proxy(socks.SOCKS4, "127.0.0.1", proxy.port, rdns=False)
    try:
        s.connect(("127.0.0.1", http.port))
        _, body = http_get(s, "127.0.0.1", http.port)
    finally:
        s.close()
    assert body == PAGE


def test_python_socks_asyncio(proxy, http):
    proxy.require("domain")
    from python_socks.async_.asyncio import Proxy

    async def fetch(host):
        p = Proxy.from_url("socks5://127.0.0.1:%d" % proxy.port, rdns=True)
        sock = await asyncio.wait_for(p.connect(dest_host=host, dest_port=http.port), 15)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % host).encode())
        data = await asyncio.wait_for(reader.read(), 15)
        writer.close()
        return data

    async def main():
        return await asyncio.gather(fetch("web.stp.test"), fetch("web6.stp.test"),
                                    fetch("127.0.0.1"))

    for data in asyncio.run(main()):
        assert re.match(rb"HTTP/1\.[01] 200 ", data), data[:200]
        assert data.endswith(PAGE)
    assert_via_proxy(proxy, "web6.stp.test", http.port)


def test_python_socks_asyncio_refused(proxy):
    from python_socks import ProxyError
    from python_socks.async_.asyncio import Proxy
    closed = services.free_port()

    async def main():
        p = Proxy.from_url("socks5://127.0.0.1:%d" % proxy.port)
        await asyncio.wait_for(p.connect(dest_host="127.0.0.1", dest_port=closed), 15)

    with pytest.raises(ProxyError) as ei:
        asyncio.run(main())
    assert ei.value.error_code == 5, ei.value   # X'05' connection refused


# ---------------------------------------------------------------------------
# proxychains4


PROXYCHAINS_CONF = """\
strict_chain
%(dns)s
remote_dns_subnet 224
tcp_read_time_out 15000
tcp_connect_time_out 8000
# No "localnet" line: the targets are on 127.0.0.1 and must go through the
# proxy; a localnet 127.0.0.0/255.0.0.0 would send them direct.
[ProxyList]
socks5 127.0.0.1 %(port)d
"""


def proxychains(tmp_path, proxy, proxy_dns, argv, input=None):
    if not shutil.which("proxychains4"):
        pytest.skip("proxychains4 not installed")
    conf = tmp_path / ("proxychains-%s.conf" % ("dns" if proxy_dns else "nodns"))
    conf.write_text(PROXYCHAINS_CONF % {"port": proxy.port,
                                        "dns": "proxy_dns" if proxy_dns else "# proxy_dns off"})
    return subprocess.run(["proxychains4", "-q", "-f", str(conf)] + argv, input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                          env=CLEAN_ENV)


def test_proxychains_curl_ip(proxy, http, tmp_path):
    mark = proxy.log_mark()
    r = proxychains(tmp_path, proxy, False,
                    ["curl", "-sS", "--max-time", "30", "http://127.0.0.1:%d/" % http.port])
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAGE
    assert_via_proxy(proxy, "127.0.0.1", http.port, since=mark)


def test_proxychains_curl_proxy_dns(proxy, http, tmp_path):
    proxy.require("domain")
    # With proxy_dns the name is unknown locally and only the proxy can
    # resolve it: success proves the request went through the proxy.
    r = proxychains(tmp_path, proxy, True,
                    ["curl", "-sS", "--max-time", "30", "http://web.stp.test:%d/" % http.port])
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAGE
    assert_via_proxy(proxy, "web.stp.test", http.port)


# ---------------------------------------------------------------------------
# Dante socksify


SOCKS_CONF = """\
route {
        from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = %d
        proxyprotocol: socks_v5
        method: none
}
"""


def socksify(tmp_path, proxy, argv, input=None):
    if not shutil.which("socksify"):
        pytest.skip("socksify (dante-client) not installed")
    conf = tmp_path / "socks.conf"
    conf.write_text(SOCKS_CONF % proxy.port)
    # Dante adds direct routes for every local interface network, 127/8
    # included, unless told not to: the targets here are all on loopback.
    e = dict(CLEAN_ENV, SOCKS_CONF=str(conf), SOCKS_AUTOADD_LANROUTES="no")
    return subprocess.run(["socksify"] + argv, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60, env=e)


def test_socksify_curl(proxy, http, tmp_path):
    mark = proxy.log_mark()
    r = socksify(tmp_path, proxy, ["curl", "-sS", "--noproxy", "*", "--max-time", "30",
                                   "http://127.0.0.1:%d/" % http.port])
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAGE
    assert_via_proxy(proxy, "127.0.0.1", http.port, since=mark)


def test_socksify_nc_echo(proxy, echo, tmp_path):
    if not shutil.which("nc"):
        pytest.skip("nc (netcat-openbsd) not installed")
    payload = os.urandom(50000).hex().encode() + b"\n"
    r = socksify(tmp_path, proxy, ["nc", "-N", "-w", "20", "127.0.0.1", str(echo.port)],
                 input=payload)
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload
    m = assert_via_proxy(proxy, "127.0.0.1", echo.port)
    if m:
        line = m.string
        assert "up=%d" % len(payload) in line and "down=%d" % len(payload) in line, line


# ---------------------------------------------------------------------------
# FTP through the proxy (pyftpdlib on loopback): curl's passive mode is two
# CONNECTs; active mode under socksify is Dante's client doing an RFC 1928
# BIND for curl's listen()/accept() (curl itself never sends BIND), so it
# checks that stpd's BIND still behaves as RFC 1928 says (and as danted's).


@pytest.fixture(scope="module")
def ftp_server(tmp_path_factory):
    try:
        import pyftpdlib  # noqa: F401
    except ImportError:
        pytest.skip("pyftpdlib (python3-pyftpdlib) not installed")
    root = tmp_path_factory.mktemp("ftp")
    body = os.urandom(150000)
    (root / "file.bin").write_bytes(body)
    port = services.free_port()
    log = open(str(root / "ftpd.log"), "w")
    proc = subprocess.Popen(["/usr/bin/python3", "-m", "pyftpdlib", "-i", "127.0.0.1",
                             "-p", str(port), "-d", str(root)],
                            stdout=log, stderr=subprocess.STDOUT)
    _wait_tcp(port)

    class Ftp:
        pass
    f = Ftp()
    f.port, f.body, f.log = port, body, str(root / "ftpd.log")
    yield f
    proc.terminate()
    proc.wait(10)
    log.close()


def _wait_tcp(port, timeout=15):
    import socket
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("the FTP server did not start on port %d" % port)


def test_curl_passive_ftp(proxy, ftp_server):
    mark = proxy.log_mark()
    r = curl("--proxy", "socks5://127.0.0.1:%d" % proxy.port,
             "ftp://127.0.0.1:%d/file.bin" % ftp_server.port)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).digest() == hashlib.sha256(ftp_server.body).digest()
    assert_via_proxy(proxy, "127.0.0.1", ftp_server.port, since=mark)


def test_socksify_curl_active_ftp(proxy, ftp_server, tmp_path):
    """curl --ftp-port under socksify: the data connection comes in through
    an RFC 1928 BIND (two replies: BND, then the FTP server as the peer)."""
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    mark = proxy.log_mark()
    r = socksify(tmp_path, proxy, ["curl", "-sS", "--noproxy", "*", "--max-time", "30",
                                   "--ftp-port", "-",
                                   "ftp://127.0.0.1:%d/file.bin" % ftp_server.port])
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).digest() == hashlib.sha256(ftp_server.body).digest()
    # the FTP server really was told to connect (PORT/EPRT), not asked for PASV
    with open(ftp_server.log) as f:
        assert "RETR" in f.read()
    if proxy.has("logs"):
        m = proxy.wait_log(r"session .*cmd=bind .*rep=\"succeeded\"", timeout=10, since=mark)
        assert "down=%d" % len(ftp_server.body) in m.string, m.string


# ---------------------------------------------------------------------------
# Chromium


def chromium_binary():
    for b in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(b):
            return shutil.which(b)
    return None


@pytest.mark.parametrize("host", ["web.stp.test", "127.0.0.1"])
def test_chromium_headless(proxy, http, tmp_path, host):
    b = chromium_binary()
    if not b:
        pytest.skip("chromium not installed")
    if host != "127.0.0.1":
        proxy.require("domain")
    url = "http://%s:%d/" % (host, http.port)
    argv = [b, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-dev-shm-usage", "--user-data-dir=%s" % (tmp_path / "chrome"),
            "--proxy-server=socks5://127.0.0.1:%d" % proxy.port,
            "--proxy-bypass-list=<-loopback>",
            # belt and braces: Chromium never resolves a name locally
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--dump-dom", url]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90,
                       env=CLEAN_ENV)
    out = r.stdout.decode(errors="replace")
    assert services.PAGE_MARKER in out, (r.returncode, out[-1000:],
                                         r.stderr.decode(errors="replace")[-2000:])
    assert_via_proxy(proxy, host, http.port)
