"""stpify leaks no DNS: a client in its own network namespace resolves and
fetches a name only the proxy's resolver knows, while a counting resolver
on the client's configured nameserver (/etc/netns/NAME/resolv.conf) sees
no query from it. A control run without stpify must be counted, so the
counter is proven to work.

And, watched by tshark on the client's interface: programs under stpify
(getaddrinfo, curl) and dig asking `stp dns` (the stub resolver inside the
client's namespace, forwarding through stpd's DNS QUERY X'F2') send no
packet to or from port 53 out of the namespace; the same capture sees the
packets of an unproxied control run. With auto-configuration, stpify
launched with only STP_PROXY=socks5:// (local DNS as the URL says) learns
`dns remote` from the served profile and leaks nothing either.

    client ns  c0 10.78.0.2/24 --veth-- p0 10.78.0.1/24  proxy ns
      resolv.conf: nameserver 10.78.0.1      counting resolver 10.78.0.1:53
                                             stpd 10.78.0.1:1080
                                             dnsmasq 127.0.0.1:5353 (secret name)
                                             HTTP 127.0.0.1:8080

Needs root. Environment: STPD, STPIFY (default: build-shim/, then build/).
"""

import http.server
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

import netns

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SECRET = "secret.stp.test"
PROXY_IP, CLIENT_IP = "10.78.0.1", "10.78.0.2"
BODY = b"only-through-the-proxy-5c1e\n"


def _binary(env, rel):
    if os.environ.get(env):
        return os.environ[env]
    for b in ("build-shim", "build"):
        p = os.path.join(REPO, b, rel)
        if os.path.exists(p):
            return p
    pytest.skip("no %s binary (set %s=)" % (rel, env))


class Counter:
    """A UDP 'resolver' that counts queries and answers none."""

    def __init__(self, ns):
        self.names = []
        self.sock = ns.run(self._open)
        threading.Thread(target=self._loop, daemon=True).start()

    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((PROXY_IP, 53))
        s.settimeout(0.2)
        return s

    def _loop(self):
        while True:
            try:
                d, _ = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            labels, i = [], 12
            while i < len(d) and d[i]:
                labels.append(d[i + 1:i + 1 + d[i]].decode(errors="replace"))
                i += 1 + d[i]
            self.names.append(".".join(labels))

    def close(self):
        self.sock.close()


class _Page(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


@pytest.fixture
def world(tmp_path):
    yield from _world(tmp_path, "")


# The auto-configuration profile: names to the proxy, everything through it.
AUTOCONFIG = ("autoconfig {\n\tprofile leakproof\n\tproxy %s:1080\n\tdns remote\n"
              "\tdefault proxy\n}\n" % PROXY_IP)


@pytest.fixture
def ac_world(tmp_path):
    yield from _world(tmp_path, AUTOCONFIG)


def _world(tmp_path, extra_conf):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    stpd, stpify = _binary("STPD", "src/server/stpd"), _binary("STPIFY", "src/shim/stpify")
    made, procs = [], []
    try:
        proxy, client = netns.Netns("dnsp"), netns.Netns("dnsc")
        made += [proxy, client]
        proxy.ip("link", "add", "p0", "type", "veth", "peer", "name", "c0", "netns", client.name)
        proxy.ip("link", "set", "p0", "up")
        client.ip("link", "set", "c0", "up")
        proxy.ip("addr", "add", PROXY_IP + "/24", "dev", "p0")
        client.ip("addr", "add", CLIENT_IP + "/24", "dev", "c0")
    except (RuntimeError, FileNotFoundError) as e:
        for ns in made:
            ns.close()
        pytest.skip("cannot create namespaces: %s" % e)
    etc = "/etc/netns/" + client.name
    os.makedirs(etc, exist_ok=True)
    with open(etc + "/resolv.conf", "w") as f:
        f.write("nameserver %s\noptions timeout:1 attempts:1\n" % PROXY_IP)
    hosts = os.path.join(str(tmp_path), "secret-hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 %s\n" % SECRET)
    counter = Counter(proxy)
    httpd = proxy.run(lambda: http.server.HTTPServer(("127.0.0.1", 8080), _Page))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    log = open(os.path.join(str(tmp_path), "servers.log"), "wb")
    procs.append(proxy.popen(
        ["dnsmasq", "--no-daemon", "--port=5353", "--listen-address=127.0.0.1",
         "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll", "--addn-hosts=" + hosts,
         "--local=/#/", "--pid-file=", "--user=root", "--group=root", "--cache-size=0"],
        stdout=log, stderr=subprocess.STDOUT))
    conf = os.path.join(str(tmp_path), "stpd.conf")
    with open(conf, "w") as f:
        f.write("listen %s:1080\nresolver 127.0.0.1:5353\n%s"
                "client pass { from 10.78.0.0/24 }\nrequest pass\n" % (PROXY_IP, extra_conf))
    procs.append(proxy.popen([stpd, "-c", conf], stdout=log, stderr=subprocess.STDOUT))
    deadline = time.time() + 10
    while "0A" not in proxy.sh("sh", "-c", "grep ':0438 ' /proc/net/tcp || true"):
        assert time.time() < deadline, "stpd did not listen"
        time.sleep(0.05)
    w = type("World", (), {})()
    w.proxy, w.client, w.counter, w.stpify = proxy, client, counter, stpify
    w.stp, w.tmp = _binary("STP_BIN", "src/cli/stp"), str(tmp_path)
    w.log_path = os.path.join(str(tmp_path), "servers.log")
    yield w
    for p in procs:
        p.terminate()
        p.wait(10)
    # shutdown first: serve_forever polling a closed socket spins at full
    # CPU for the rest of the session (every later netns test ran 4x slower)
    httpd.shutdown()
    httpd.server_close()
    counter.close()
    log.close()
    shutil.rmtree(etc, ignore_errors=True)
    for ns in made:
        ns.close()


def _client(w, argv, proxied=True):
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "HTTP_PROXY", "LD_PRELOAD")}
    if proxied:
        argv = [w.stpify, "--proxy", "socks5h://%s:1080" % PROXY_IP] + argv
    return subprocess.run(["ip", "netns", "exec", w.client.name] + argv, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)


def test_no_dns_query_leaves_the_client(world):
    w = world
    url = "http://%s:8080/" % SECRET
    r = _client(w, ["curl", "-sS", "--max-time", "10", url])
    assert r.stdout == BODY, r.stderr
    r = _client(w, ["/usr/bin/python3", "-c",
                    "import socket, urllib.request;"
                    "print(socket.gethostbyname('%s'));"
                    "print(urllib.request.urlopen('%s', timeout=10).read().decode(), end='')"
                    % (SECRET, url)])
    assert r.stdout.decode().split("\n", 1) == ["240.0.0.1", BODY.decode()], r.stderr
    time.sleep(0.5)
    assert w.counter.names == [], "the client asked its resolver: %s" % w.counter.names


def test_counter_sees_a_client_without_stpify(world):
    """The control: the same fetch without stpify asks the configured
    resolver (and fails, since only the proxy knows the name)."""
    r = _client(world, ["curl", "-sS", "--max-time", "5", "http://%s:8080/" % SECRET],
                proxied=False)
    assert r.returncode != 0
    deadline = time.time() + 3
    while SECRET not in world.counter.names and time.time() < deadline:
        time.sleep(0.05)
    assert SECRET in world.counter.names


# ---------------------------------------------------------------------------
# tshark on the client's interface


class Capture:
    """tshark -i c0 -f 'port 53' in the client's namespace, into a pcap."""

    def __init__(self, w, tag):
        if not shutil.which("tshark"):
            pytest.fail("tshark missing (scripts/deps.sh installs it)")
        self.path = os.path.join(w.tmp, "dns-%s.pcap" % tag)
        self.err = open(os.path.join(w.tmp, "tshark-%s.log" % tag), "w+b")
        self.proc = w.client.popen(["tshark", "-n", "-i", "c0", "-f", "port 53", "-w",
                                    self.path], stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + 30
        # "Capturing on" comes before dumpcap has the interface open;
        # tshark logs "Capture started" once it has (a packet sent in
        # between is not captured: the control test saw 0 packets)
        while b"Capture started" not in self._log():
            assert self.proc.poll() is None, self._log()
            assert time.time() < deadline, "tshark did not start: %r" % self._log()
            time.sleep(0.05)

    def _log(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def packets(self):
        """Stops the capture; the packets seen, one summary line each."""
        time.sleep(0.5)  # let the last packets of the run reach the capture
        self.proc.terminate()
        self.proc.wait(15)
        self.err.close()
        r = subprocess.run(["tshark", "-n", "-r", self.path], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return [ln for ln in r.stdout.splitlines() if ln.strip()]


def _stub(w):
    """stp dns on 127.0.0.1:53 inside the client's namespace."""
    p = w.client.popen([w.stp, "dns", "--listen", "127.0.0.1:53",
                        "socks5h://%s:1080" % PROXY_IP], stderr=subprocess.PIPE)
    line = p.stderr.readline().decode()
    assert "listening on 127.0.0.1:53" in line, line
    return p


def test_tshark_sees_no_dns_packet(world):
    w = world
    cap = Capture(w, "proxied")
    stub = _stub(w)
    try:
        r = _client(w, ["/usr/bin/python3", "-c",
                        "import socket;"
                        "print(sorted({a[4][0] for a in socket.getaddrinfo('%s', 8080)}))"
                        % SECRET])
        assert r.returncode == 0 and "240." in r.stdout.decode(), r.stderr
        r = _client(w, ["curl", "-sS", "--max-time", "10", "http://%s:8080/" % SECRET])
        assert r.stdout == BODY, r.stderr
        for transport in ("+notcp", "+tcp"):
            r = _client(w, ["dig", "@127.0.0.1", "-p", "53", "+short", "+time=10", "+tries=1",
                            transport, SECRET], proxied=False)
            assert r.stdout.decode().split() == ["127.0.0.1"], r.stdout + r.stderr
    finally:
        stub.terminate()
        stub.wait(10)
        stub.stderr.close()
    pkts = cap.packets()
    assert pkts == [], "DNS packets left the client's namespace:\n" + "\n".join(pkts)
    assert w.counter.names == []


def test_tshark_sees_an_unproxied_client(world):
    """The control: the capture does see a client that asks its resolver."""
    cap = Capture(world, "control")
    r = _client(world, ["dig", "@%s" % PROXY_IP, "+time=1", "+tries=2", SECRET],
                proxied=False)
    assert r.returncode != 0  # the counting resolver never answers
    pkts = cap.packets()
    assert pkts and all(".53 " in p or " 53 " in p or "DNS" in p for p in pkts), pkts


@pytest.mark.stpd_module("autoconf")
def test_autoconfig_only_stp_proxy_leaks_no_dns(ac_world):
    """stpify with nothing but STP_PROXY: the launcher fetches the profile
    (X'F4', `dns remote`), and getaddrinfo and curl under it send no packet
    to or from port 53 out of the client's namespace (tshark), nor ask the
    configured resolver (the counter)."""
    w = ac_world
    home = os.path.join(w.tmp, "home")
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "HTTP_PROXY",
                                "LD_PRELOAD", "STP_AUTOCONF", "STP_DNS", "XDG_CACHE_HOME")}
    env.update(STP_PROXY="socks5://%s:1080" % PROXY_IP, HOME=home, STP_LOG="info")
    cap = Capture(w, "autoconfig")
    runs = []
    for argv in (["/usr/bin/python3", "-c",
                  "import socket;"
                  "print(sorted({a[4][0] for a in socket.getaddrinfo('%s', 8080)}))" % SECRET],
                 ["curl", "-sS", "--max-time", "10", "http://%s:8080/" % SECRET]):
        runs.append(subprocess.run(["ip", "netns", "exec", w.client.name, w.stpify] + argv,
                                   env=env, capture_output=True, timeout=60))
    r = runs[0]
    assert r.returncode == 0 and "240." in r.stdout.decode(), r.stderr
    # STP_PROXY said socks5://: socks5h is the served `dns remote`.
    assert b"proxy socks5h://%s:1080" % PROXY_IP.encode() in r.stderr, r.stderr
    assert b"dns through the proxy" in r.stderr
    assert runs[1].stdout == BODY, runs[1].stderr
    pkts = cap.packets()
    assert pkts == [], "DNS packets left the client's namespace:\n" + "\n".join(pkts)
    assert w.counter.names == []
    with open(w.log_path, "rb") as f:
        assert b"cmd=autoconfig" in f.read()
