"""Client auto-configuration (docs/config.md "autoconfig", docs/protocol.md
5.5): the PAC file stpd serves over HTTP per client address, refused for
clients the rules refuse, changed by a reload, used by headless Chromium
to send one site through stpd and another direct; CMD X'F4' per user, its
exact bytes, blocked by rules, changed by a reload; bad input on both."""

import http.server
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

import services
import socksraw as S
import stpdconf

pytestmark = pytest.mark.stpd_module("autoconf")

CMD_AUTOCONFIG = 0xF4
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                                  "socks_proxy", "socks5_proxy")}


def ac_conf(http_port, profiles, rules="request pass { }\n", auth=""):
    return stpdconf.conf(
        auth=auth,
        extra="autoconfig {\n\thttp 127.0.0.1:%d\n%s}\n" % (http_port, profiles),
        request_rules=rules)


OFFICE = """\
	profile office
	proxy 127.0.0.1:$port
	direct .intranet.test 127.0.0.3
	refresh 120
	profile lab
	proxy 127.0.0.1:$port
	default direct
	via 127.0.0.2
	dns local
"""


def fetch(port, path="/proxy.pac", source="127.0.0.1", method="GET"):
    """(status, content type, body) of one HTTP request from source."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(source, 0))
    with s:
        s.sendall(("%s %s HTTP/1.0\r\nHost: x\r\n\r\n" % (method, path)).encode())
        data = S.recv_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    ctype = [ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("content-type:")]
    return status, ctype[0] if ctype else None, body.decode()


# ---------------------------------------------------------------------------
# PAC over HTTP


def test_pac_per_client(stpd_factory):
    hp = services.free_port()
    rules = ("request pass { from 127.0.0.5; command autoconfig; profile lab }\n"
             "request pass { }\n")
    p = stpd_factory(conf=ac_conf(hp, OFFICE, rules))
    p.wait_log(r"autoconfig: serving PAC on http://127\.0\.0\.1:%d/proxy\.pac" % hp)
    st, ctype, office = fetch(hp)
    assert st == 200 and ctype == "application/x-ns-proxy-autoconfig"
    assert "function FindProxyForURL(url, host)" in office
    assert 'profile "office"' in office
    assert 'dnsDomainIs(h, ".intranet.test")) return "DIRECT"' in office
    assert 'isInNet(h, "127.0.0.3", "255.255.255.255")) return "DIRECT"' in office
    assert office.rstrip().endswith('return "SOCKS5 127.0.0.1:%d";\n}' % p.port)
    st, _, lab = fetch(hp, source="127.0.0.5")
    assert st == 200 and 'profile "lab"' in lab
    assert 'isInNet(h, "127.0.0.2", "255.255.255.255")) return "SOCKS5 127.0.0.1:%d"' % p.port \
        in lab
    assert lab.rstrip().endswith('return "DIRECT";\n}')
    p.wait_log(r"autoconfig http client=127\.0\.0\.5:\d+ GET /proxy\.pac: 200 profile lab")
    # The same profile as the X'F4' document, for people.
    st, _, doc = fetch(hp, "/stp-autoconfig", source="127.0.0.5")
    assert st == 200 and doc.startswith("stp-autoconfig 1\nprofile lab\n")


def test_pac_refused(stpd_factory):
    hp = services.free_port()
    rules = ("request block { from 127.0.0.9; command autoconfig }\n"
             "request pass { }\n")
    clients = "client block { from 127.0.0.8 }\n" + stpdconf.LOOPBACK_CLIENTS
    text = stpdconf.conf(extra="autoconfig {\n\thttp 127.0.0.1:%d\n%s}\n" % (hp, OFFICE),
                         request_rules=rules, client_rules=clients)
    p = stpd_factory(conf=text)
    p.wait_log(r"serving PAC")
    st, _, body = fetch(hp, source="127.0.0.8")
    assert st == 403 and "client blocked by rule at" in body
    st, _, body = fetch(hp, source="127.0.0.9")
    assert st == 403 and "no autoconfig profile (rule at" in body
    p.wait_log(r"autoconfig http client=127\.0\.0\.9:\d+ GET /proxy\.pac: 403")
    assert fetch(hp, "/other")[0] == 404
    assert fetch(hp, method="POST")[0] == 405
    assert fetch(hp, method="HEAD")[0] == 200
    assert fetch(hp)[0] == 200


def test_pac_reload(stpd_factory):
    hp = services.free_port()
    text = ac_conf(hp, OFFICE)
    p = stpd_factory(conf=text)
    p.wait_log(r"serving PAC")
    assert ".intranet.test" in fetch(hp)[2]
    p.write_conf(text.replace(".intranet.test", ".branch.test"))
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"configuration reloaded", since=mark, timeout=30)  # ASan under load
    body = fetch(hp)[2]
    assert ".branch.test" in body and ".intranet.test" not in body


def test_http_bad_input(stpd_factory):
    """Garbage, a huge request line, a client that sends half a request
    and leaves: the listener answers the next client."""
    hp = services.free_port()
    p = stpd_factory(conf=ac_conf(hp, OFFICE))
    p.wait_log(r"serving PAC")
    for junk in (b"\x00\xff" * 100 + b"\r\n\r\n", b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\n\r\n",
                 b"GET /proxy.pac HTTP/1.1\r\nHost: x\r\n", b"G"):
        s = socket.create_connection(("127.0.0.1", hp), timeout=10)
        with s:
            s.settimeout(2)  # a cut request waits for the rest: leave
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                got = S.recv_all(s)
            except OSError:  # timeouts included
                got = b""
        assert not got.startswith(b"HTTP/1.1 200"), got[:100]
    assert fetch(hp)[0] == 200
    assert p.alive()


class _Site(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("<html><body>%s</body></html>" % self.server.marker).encode()
        self.server.hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Site:
    """An HTTP server on addr:free port answering a page with marker."""

    def __init__(self, addr, marker):
        self.port = services.free_port()
        self.srv = http.server.ThreadingHTTPServer((addr, self.port), _Site)
        self.srv.marker, self.srv.hits = marker, 0
        self.addr, self.url = addr, "http://%s:%d/" % (addr, self.port)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def two_sites():
    a, b = Site("127.0.0.1", "SITE-VIA-PROXY"), Site("127.0.0.3", "SITE-DIRECT")
    yield a, b
    a.close()
    b.close()


def chromium(pac_url, url, tmp_path):
    b = shutil.which("chromium")
    if not b:
        pytest.fail("chromium missing (scripts/deps.sh installs it)")
    argv = [b, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
            "--user-data-dir=%s" % (tmp_path / "chrome"), "--proxy-pac-url=%s" % pac_url,
            "--proxy-bypass-list=<-loopback>",
            # Names Chromium resolves itself (DIRECT ones) never reach a DNS
            # server: direct.stp.test is mapped here, every other name fails.
            "--host-resolver-rules=MAP direct.stp.test 127.0.0.3, MAP * ~NOTFOUND, "
            "EXCLUDE 127.0.0.1",
            "--dump-dom", url]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                       env=CLEAN_ENV)
    return r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")[-2000:]


def test_pac_chromium(stpd_factory, two_sites, tmp_path):
    """The PAC sends web.stp.test (127.0.0.1, resolved by stpd) through
    stpd and direct.stp.test (127.0.0.3, mapped in Chromium) direct: both
    pages load, and only the first has a session line. Names, not loopback
    literals: Chromium sends loopback direct whatever a PAC says, and each
    name here fails unless the PAC routes it as configured."""
    via, direct = two_sites
    hp = services.free_port()
    prof = "\tprofile web\n\tproxy 127.0.0.1:$port\n\tdirect direct.stp.test\n"
    p = stpd_factory(conf=ac_conf(hp, prof))
    p.wait_log(r"serving PAC")
    pac = "http://127.0.0.1:%d/proxy.pac" % hp
    out, err = chromium(pac, "http://web.stp.test:%d/" % via.port, tmp_path)
    assert "SITE-VIA-PROXY" in out, (out[-500:], err)
    p.wait_log(r"session .*cmd=connect target=web\.stp\.test:%d\b.*rep=\"succeeded" % via.port)
    p.wait_log(r"autoconfig http client=127\.0\.0\.1:\d+ GET /proxy\.pac: 200 profile web")
    assert via.srv.hits >= 1
    out, err = chromium(pac, "http://direct.stp.test:%d/" % direct.port, tmp_path)
    assert "SITE-DIRECT" in out, (out[-500:], err)
    assert direct.srv.hits >= 1
    assert not p.log_lines(r"target=(direct\.stp\.test|127\.0\.0\.3):%d\b" % direct.port)


# ---------------------------------------------------------------------------
# CMD X'F4'


def get_config(proxy, user=None, password=None, source="127.0.0.1"):
    """(REP, document or None, closed after)."""
    s = S.dial(proxy.port, source=source)
    with s:
        if user:
            assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
            assert S.userpass(s, user, password) == 0
        else:
            assert S.negotiate(s) == S.M_NONE
        s.sendall(S.request_msg(CMD_AUTOCONFIG, "0.0.0.0", 0))
        head = S.recv_exact(s, 10)
        assert head[0] == 5 and head[2] == 0
        if head[1] != 0:
            return head[1], None, S.closed_by_peer(s, 10)
        # BND is 0.0.0.0:0, then LEN (2, MSB first) and DOC.
        assert head[3:] == b"\x01\x00\x00\x00\x00\x00\x00"
        (n,) = struct.unpack(">H", S.recv_exact(s, 2))
        assert 0 < n <= 8192
        doc = S.recv_exact(s, n).decode("ascii")
        return 0, doc, S.closed_by_peer(s, 10)


USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def test_f4_per_user(stpd_factory):
    hp = services.free_port()
    rules = ("request pass { user alice; command autoconfig; profile office }\n"
             "request pass { user bob; command autoconfig; profile lab }\n"
             "request pass { }\n")
    p = stpd_factory(conf=ac_conf(hp, OFFICE, rules, auth=stpdconf.userpass_auth()),
                     users=USERS)
    rep, a, closed = get_config(p, "alice", "alice-pw")
    assert rep == 0 and closed
    assert a == ("stp-autoconfig 1\nprofile office\nrefresh 120\nproxy 127.0.0.1:%d\n"
                 "method none\ncredentials none\ndns remote\ndefault proxy\n"
                 "direct .intranet.test\ndirect 127.0.0.3\n" % p.port)
    rep, b, _ = get_config(p, "bob", "bob-pw")
    assert rep == 0
    assert b == ("stp-autoconfig 1\nprofile lab\nrefresh 3600\nproxy 127.0.0.1:%d\n"
                 "method none\ncredentials none\ndns local\ndefault direct\nvia 127.0.0.2\n"
                 % p.port)
    p.wait_log(r"user=alice.*autoconfig: profile office")
    p.wait_log(r"session .*user=bob .*cmd=autoconfig .*rep=\"?succeeded")


def test_f4_blocked_and_reload(stpd_factory):
    hp = services.free_port()
    rules = ("request block { from 127.0.0.9; command autoconfig }\n"
             "request pass { }\n")
    text = ac_conf(hp, OFFICE, rules)
    p = stpd_factory(conf=text)
    rep, doc, closed = get_config(p, source="127.0.0.9")
    assert rep == 0x02 and doc is None and closed
    p.wait_log(r"deny .*cmd=autoconfig")
    rep, doc, _ = get_config(p)
    assert rep == 0 and "profile office" in doc
    p.write_conf(text.replace("refresh 120", "refresh 77"))
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"configuration reloaded", since=mark)
    assert "refresh 77\n" in get_config(p)[1]


def test_f4_truncated_requests(stpd_factory):
    """The request cut at every byte, the client leaving: stpd closes each
    without a reply and answers the next whole request."""
    hp = services.free_port()
    p = stpd_factory(conf=ac_conf(hp, OFFICE))
    msg = S.greeting() + S.request_msg(CMD_AUTOCONFIG, "0.0.0.0", 0)
    for cut in range(1, len(msg)):
        s = S.dial(p.port)
        with s:
            s.sendall(msg[:cut])
            s.shutdown(socket.SHUT_WR)
            got = S.recv_all(s)
        assert len(got) <= 2, (cut, got)  # at most the method choice
    assert get_config(p)[0] == 0
    assert p.alive()


def test_f4_without_profile(stpd_factory):
    """No autoconfig profile: X'07' (as a server without the command), and
    the session line says why."""
    p = stpd_factory(conf=stpdconf.conf())
    rep, doc, closed = get_config(p)
    assert rep == 0x07 and closed
    p.wait_log(r"session .*cmd=autoconfig .*no autoconfig profile")
