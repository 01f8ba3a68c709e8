"""stpify (LD_PRELOAD socksifier) with unmodified programs, against stpd
and Dante's danted: curl, wget, python urllib, a python asyncio client,
node's net, nc, dig (UDP), a threaded program and a forking one; error
mapping (blocking and non-blocking connect), NO_PROXY/localhost, fd
protection, BIND. test_compat_matrix runs the same programs under
proxychains4 and Dante's socksify and writes the table for docs/client.md.

Every client runs in a private mount namespace whose resolv.conf points at
127.0.0.1:53 (where nothing listens) and whose /etc/hosts lacks the test
names: *.stp.test can only be reached through the proxy's resolver, and a
leaking client fails instead of asking the machine's DNS server.

Environment: STPD=path (as for the other tests); STPIFY=path to the
launcher (default: next to $STPD's build tree, src/shim/stpify).
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import servers
import services

HERE = os.path.dirname(os.path.abspath(__file__))


def _build_dir():
    stpd = os.environ.get("STPD")
    if stpd:
        return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(stpd))))
    return os.path.join(servers.REPO, "build")


def stpify_bin():
    return os.environ.get("STPIFY") or os.path.join(_build_dir(), "src", "shim", "stpify")


@pytest.fixture(scope="module", autouse=True)
def _need_binaries():
    if not os.path.exists(stpify_bin()):
        pytest.fail("stpify not found at %s (set STPIFY= or STPD=)" % stpify_bin())


PROXY_VARS = ("STP_PROXY", "ALL_PROXY", "NO_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "STP_LOG",
              "STP_BIND", "STP_SERVE", "STP_PROXY_LOOPBACK", "STP_DEBUG", "LD_PRELOAD",
              "SOCKS_CONF", "SOCKS_SERVER", "STPIFY_CONFIG")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_VARS}
    env.update({k: str(v) for k, v in extra.items()})
    return env


SERVERS = ["stpd", "danted"]


@pytest.fixture(params=SERVERS)
def server(request, proxy_factory):
    if request.param == "danted" and shutil.which("danted") is None:
        pytest.skip("danted not installed")
    return proxy_factory(kind=request.param)


# ---------------------------------------------------------------------------
# the three socksifiers


class Tool:
    def __init__(self, name, workdir, proxy):
        self.name, self.workdir, self.proxy = name, workdir, proxy

    def argv(self, argv):
        if self.name == "stpify":
            return [stpify_bin()] + argv
        if self.name == "proxychains4":
            conf = os.path.join(self.workdir, "proxychains-%d.conf" % self.proxy.port)
            with open(conf, "w") as f:
                f.write("strict_chain\nproxy_dns\nremote_dns_subnet 224\n"
                        "tcp_read_time_out 15000\ntcp_connect_time_out 8000\n"
                        "[ProxyList]\nsocks5 127.0.0.1 %d\n" % self.proxy.port)
            return ["proxychains4", "-q", "-f", conf] + argv
        return ["socksify"] + argv

    def env(self, **extra):
        e = clean_env()
        if self.name == "stpify":
            e.update(STP_PROXY="socks5h://127.0.0.1:%d" % self.proxy.port,
                     STP_PROXY_LOOPBACK="1", STP_TIMEOUT="10")
        elif self.name == "socksify":
            conf = os.path.join(self.workdir, "socks-%d.conf" % self.proxy.port)
            with open(conf, "w") as f:
                f.write("resolveprotocol: fake\n"
                        "route {\n from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = %d\n"
                        " proxyprotocol: socks_v5\n method: none\n"
                        " command: connect udpassociate bind bindreply udpreply\n}\n"
                        % self.proxy.port)
            e["SOCKS_CONF"] = conf
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def run(self, argv, input=b"", timeout=30, **env):
        """Runs argv under the tool in the isolated mount namespace."""
        full = servers._isolated(self.workdir, self.argv(argv), test_names=False)
        return subprocess.run(full, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, env=self.env(**env))


def tool(name, proxy, tmp_path):
    if name != "stpify" and shutil.which(name) is None:
        pytest.skip("%s not installed" % name)
    return Tool(name, str(tmp_path), proxy)


def pyprog(tmp_path, name, body):
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(body))
    return ["/usr/bin/python3", path]


# ---------------------------------------------------------------------------
# the programs: each returns (ok, detail)

def prog_curl(t, tmp_path, http, **_):
    r = t.run(["curl", "-sS", "--max-time", "15", "http://web.stp.test:%d/" % http.port])
    return services.PAGE_MARKER.encode() in r.stdout, r


def prog_wget(t, tmp_path, http, **_):
    r = t.run(["wget", "-q", "-T", "15", "-t", "1", "-O", "-",
               "http://web.stp.test:%d/" % http.port])
    return services.PAGE_MARKER.encode() in r.stdout, r


def prog_urllib(t, tmp_path, http, **_):
    argv = pyprog(tmp_path, "ul.py", """
        import sys, urllib.request
        print(urllib.request.urlopen(sys.argv[1], timeout=15).read().decode())
    """)
    r = t.run(argv + ["http://web.stp.test:%d/" % http.port])
    return services.PAGE_MARKER.encode() in r.stdout, r


def prog_asyncio(t, tmp_path, echo, **_):
    argv = pyprog(tmp_path, "aio.py", """
        import asyncio, sys
        async def one(i):
            r, w = await asyncio.wait_for(asyncio.open_connection("web.stp.test", int(sys.argv[1])), 15)
            w.write(b"async %d\\n" % i); await w.drain()
            line = await asyncio.wait_for(r.readline(), 15)
            w.close()
            return line
        async def main():
            lines = await asyncio.gather(*(one(i) for i in range(5)))
            print(b"".join(lines).decode(), end="")
        asyncio.run(main())
    """)
    r = t.run(argv + [str(echo.port)])
    want = "".join("async %d\n" % i for i in range(5)).encode()
    return r.stdout == want, r


def prog_node(t, tmp_path, echo, **_):
    if shutil.which("node") is None:
        pytest.skip("node not installed")
    js = os.path.join(str(tmp_path), "n.js")
    with open(js, "w") as f:
        f.write(textwrap.dedent("""
            const net = require('net');
            const s = net.connect({host: 'web.stp.test', port: +process.argv[2]}, () => s.end('node ok\\n'));
            let out = '';
            s.on('data', d => out += d);
            s.on('end', () => { process.stdout.write(out); });
            s.on('error', e => { console.error('error', e.code); process.exit(3); });
            setTimeout(() => { console.error('timeout'); process.exit(4); }, 15000).unref();
        """))
    r = t.run(["node", js, str(echo.port)])
    return r.stdout == b"node ok\n", r


def prog_nc(t, tmp_path, echo, **_):
    r = t.run(["nc", "-N", "-w", "15", "web.stp.test", str(echo.port)], input=b"nc ok\n")
    return r.stdout == b"nc ok\n", r


def prog_dig(t, tmp_path, dns, **_):
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (dnsutils)")
    r = t.run(["dig", "+short", "+tries=2", "+time=3", "@web.stp.test", "-p", str(dns.port),
               "web6.stp.test", "AAAA"])
    return r.stdout.strip() == b"::1", r


def prog_threads(t, tmp_path, http, **_):
    argv = pyprog(tmp_path, "thr.py", """
        import socket, sys, threading, urllib.request
        port = int(sys.argv[1]); ok = []; lock = threading.Lock()
        def work(i):
            # distinct names resolve to distinct addresses, concurrently
            a = socket.getaddrinfo("n%d.example" % i, 80, socket.AF_INET)[0][4][0]
            body = urllib.request.urlopen("http://web.stp.test:%d/" % port, timeout=15).read()
            with lock:
                ok.append((a, b"stp-test-page" in body))
        ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        [x.start() for x in ts]; [x.join() for x in ts]
        addrs = {a for a, _ in ok}
        print("threads", len(ok), all(g for _, g in ok), len(addrs))
    """)
    r = t.run(argv + [str(http.port)], timeout=60)
    return r.stdout.strip() == b"threads 16 True 16", r


def prog_fork(t, tmp_path, echo, **_):
    argv = pyprog(tmp_path, "fork.py", """
        import os, socket, sys
        port = int(sys.argv[1])
        def talk(addr, msg):
            s = socket.create_connection(addr, timeout=15)
            s.sendall(msg); s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                d = s.recv(100)
                if not d: break
                data += d
            return data
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            # the child resolves a name the parent never saw and hands over
            # only the address; then it uses the connection path itself
            a = socket.getaddrinfo("both.stp.test", port, socket.AF_INET, socket.SOCK_STREAM)[0][4]
            os.write(wr, a[0].encode())
            got = talk(("web.stp.test", port), b"child\\n")
            os._exit(0 if got == b"child\\n" else 1)
        os.close(wr)
        addr = os.read(rd, 100).decode()
        _, st = os.waitpid(pid, 0)
        got = talk((addr, port), b"parent\\n")
        print("fork", os.WEXITSTATUS(st), got.decode().strip())
    """)
    r = t.run(argv + [str(echo.port)])
    return r.stdout.strip() == b"fork 0 parent", r


PROGRAMS = {
    "curl": prog_curl, "wget": prog_wget, "python urllib": prog_urllib,
    "python asyncio": prog_asyncio, "node net": prog_node, "nc": prog_nc, "dig (UDP)": prog_dig,
    "threads": prog_threads, "fork": prog_fork,
}


@pytest.mark.parametrize("prog", list(PROGRAMS))
def test_program_through_stpify(server, prog, tmp_path, http, echo, dns):
    t = tool("stpify", server, tmp_path)
    ok, r = PROGRAMS[prog](t, tmp_path, http=http, echo=echo, dns=dns)
    assert ok, "rc=%s stdout=%r stderr=%r" % (r.returncode, r.stdout[-500:], r.stderr[-2000:])


def test_traffic_goes_through_stpd(proxy_factory, tmp_path, echo):
    """The proxy, not the client, resolved the name: stpd logs the session
    with the name as the target."""
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    ok, r = prog_nc(t, tmp_path, echo=echo)
    assert ok, r.stderr
    p.wait_log(r"cmd=connect target=web\.stp\.test:%d" % echo.port)


# ---------------------------------------------------------------------------
# errors: the matching errno, blocking and non-blocking

ERRPROG = """
    import errno, select, socket, sys
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket()
    if mode == "block":
        try:
            s.connect((host, port)); print("connected")
        except OSError as e:
            print(errno.errorcode[e.errno])
    else:
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        print(errno.errorcode.get(rc, rc))
        select.select([], [s], [], 15)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        print(errno.errorcode.get(err, err))
        print("blocking" if s.getblocking() else "nonblocking")
"""


@pytest.mark.parametrize("mode", ["block", "nonblock"])
def test_connect_errors_map_to_errno(proxy_factory, tmp_path, mode):
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "err.py", ERRPROG)
    closed = services.free_port()
    # X'05' connection refused, X'04' host unreachable (NXDOMAIN at the proxy)
    for host, want in (("127.0.0.1", "ECONNREFUSED"),
                       (services.NXDOMAIN_NAME, "EHOSTUNREACH")):
        r = t.run(argv + [host, str(closed), mode])
        lines = r.stdout.decode().split()
        if mode == "block":
            assert lines == [want], r.stderr
        else:
            assert lines == ["EINPROGRESS", want, "nonblocking"], r.stderr


def test_nonblocking_success_semantics(server, tmp_path, echo):
    argv = pyprog(tmp_path, "nb.py", """
        import errno, select, socket, sys
        s = socket.socket(); s.setblocking(False)
        rc = s.connect_ex(("web.stp.test", int(sys.argv[1])))
        _, w, _ = select.select([], [s], [], 15)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        peer = s.getpeername()
        s.setblocking(True); s.sendall(b"x\\n"); got = s.recv(10)
        print(errno.errorcode.get(rc, rc), bool(w), err, peer[0].startswith("240."), got)
    """)
    t = tool("stpify", server, tmp_path)
    r = t.run(argv + [str(echo.port)])
    assert r.stdout.strip() == b"EINPROGRESS True 0 True b'x\\n'", r.stderr


def test_proxy_down_is_econnrefused(tmp_path):
    class Down:
        port = services.free_port()
    t = Tool("stpify", str(tmp_path), Down)
    argv = pyprog(tmp_path, "err.py", ERRPROG)
    r = t.run(argv + ["127.0.0.1", "80", "block"])
    assert r.stdout.split() == [b"ECONNREFUSED"]
    assert b"stpify: connect 127.0.0.1:80: proxy unreachable" in r.stderr


def test_proxy_name_next_address_after_refusal(proxy_factory, tmp_path, echo):
    """STP_PROXY=socks5h://localhost:PORT with stpd on 127.0.0.1 only, and
    an IPv6 socket: the test /etc/hosts gives localhost 127.0.0.1 and ::1,
    so the socket's own family comes first, [::1] refuses, and stpify
    moves on to ::ffff:127.0.0.1 on the same socket."""
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "v6.py", """
        import socket, sys
        ai = socket.getaddrinfo("web.stp.test", int(sys.argv[1]), socket.AF_INET6,
                                socket.SOCK_STREAM)
        s = socket.socket(socket.AF_INET6)
        s.connect(ai[0][4]); s.sendall(b"he-v6\\n"); print(s.recv(10))
    """)
    r = t.run(argv + [str(echo.port)], STP_PROXY="socks5h://localhost:%d" % p.port,
              STP_LOG="debug", STP_MUX="0")  # per-connection proxy addresses
    assert r.stdout.strip() == b"b'he-v6\\n'", r.stderr
    assert b"proxy [::1]:%d: Connection refused" % p.port in r.stderr, r.stderr
    p.wait_log(r"cmd=connect target=web\.stp\.test:%d" % echo.port)


# ---------------------------------------------------------------------------
# policy: loopback, localhost, NO_PROXY

def test_loopback_direct_by_default(proxy_factory, tmp_path, echo):
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    mark = p.log_mark()
    r = t.run(["nc", "-N", "-w", "5", "127.0.0.1", str(echo.port)], input=b"direct\n",
              STP_PROXY_LOOPBACK="0")
    assert r.stdout == b"direct\n"
    assert p.log_lines(r"cmd=connect", since=mark) == []


def test_localhost_and_noproxy_resolve_locally(proxy_factory, tmp_path):
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "res.py", """
        import socket
        def a(n):
            try:
                return socket.getaddrinfo(n, 1, socket.AF_INET)[0][4][0]
            except socket.gaierror:
                return "fail"
        print(a("localhost"), a("web.stp.test"), a("direct.example"), a("10.1.2.3"))
    """)
    r = t.run(argv, NO_PROXY="example")
    # direct.example went to the (dead) local resolver: it fails, as it should
    f = r.stdout.split()
    assert f[0] == b"127.0.0.1" and f[1].startswith(b"240.") and f[2] == b"fail" \
        and f[3] == b"10.1.2.3", r


def test_app_cannot_close_internal_fds(server, tmp_path, dns):
    """A program closing every fd it does not know (daemon style) keeps its
    UDP association working."""
    if not server.has("udp"):
        pytest.skip("no UDP")
    argv = pyprog(tmp_path, "closeall.py", """
        import os, socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
        q = bytes.fromhex("12340100000100000000000003776562037374700474657374000001" "0001")
        dst = ("web.stp.test", int(sys.argv[1]))
        s.sendto(q, dst); a = s.recvfrom(512)
        for fd in range(3, 200):
            if fd != s.fileno():
                try: os.close(fd)
                except OSError: pass
        s.sendto(q, dst); b = s.recvfrom(512)
        print(a[0][:2] == b"\\x12\\x34", b[0][:2] == b"\\x12\\x34", a[1][0].startswith("240."))
    """)
    t = tool("stpify", server, tmp_path)
    r = t.run(argv + [str(dns.port)])
    assert r.stdout.strip() == b"True True True", r.stderr


def test_bind_reverse_channel(server, tmp_path):
    """STP_BIND=1: listen() becomes SOCKS BIND; a peer connecting to the
    address getsockname() reports reaches the program's accept()."""
    server.require("bind")
    argv = pyprog(tmp_path, "bind.py", """
        import socket, sys
        s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(1)
        print("%s %d" % s.getsockname(), flush=True)
        c, peer = s.accept()
        print(c.recv(100).decode().strip(), flush=True)
        c.sendall(b"pong\\n"); c.close()
    """)
    t = tool("stpify", server, tmp_path)
    full = servers._isolated(t.workdir, t.argv(argv), test_names=False)
    p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=t.env(STP_BIND="1"))
    try:
        host, port = p.stdout.readline().decode().split()
        with socket.create_connection((host, int(port)), timeout=10) as c:
            c.sendall(b"ping\n")
            assert c.recv(100) == b"pong\n"
        assert p.stdout.readline() == b"ping\n"
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_launcher_options(proxy_factory, tmp_path, echo):
    p = proxy_factory(kind="stpd")
    conf = os.path.join(str(tmp_path), "stpify.conf")
    with open(conf, "w") as f:
        f.write("# test\nproxy socks5h://127.0.0.1:%d\nproxy_loopback yes\nlog info\n" % p.port)
    full = servers._isolated(str(tmp_path), [stpify_bin(), "--config", conf, "nc", "-N", "-w",
                                             "5", "web.stp.test", str(echo.port)],
                             test_names=False)
    r = subprocess.run(full, input=b"conf\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=clean_env(), timeout=30)
    assert r.stdout == b"conf\n", r.stderr
    assert b"stpify: connect web.stp.test:%d: through the proxy" % echo.port in r.stderr
    r = subprocess.run([stpify_bin(), "--proxy", "http://x", "true"], env=clean_env(),
                       stderr=subprocess.PIPE)
    assert r.returncode == 2 and b"scheme" in r.stderr
    r = subprocess.run([stpify_bin(), "true"], env=clean_env(), stderr=subprocess.PIPE)
    assert r.returncode == 2 and b"no proxy configured" in r.stderr


# ---------------------------------------------------------------------------
# compatibility matrix (docs/client.md)

MATRIX_OUT = os.environ.get("STPIFY_MATRIX_OUT")


def test_compat_matrix(server, tmp_path, http, echo, dns):
    """Runs every program under stpify, proxychains4 and socksify. stpify
    must work wherever either of the others does; the table goes to
    $STPIFY_MATRIX_OUT (markdown rows) when set."""
    rows, worse = [], []
    for prog, fn in PROGRAMS.items():
        res = {}
        for name in ("stpify", "proxychains4", "socksify"):
            if name != "stpify" and shutil.which(name) is None:
                res[name] = None
                continue
            try:
                ok, _ = fn(Tool(name, str(tmp_path), server), tmp_path, http=http, echo=echo,
                           dns=dns)
            except subprocess.TimeoutExpired:
                ok = False
            res[name] = ok
        rows.append((prog, res))
        if not res["stpify"] and (res["proxychains4"] or res["socksify"]):
            worse.append(prog)
    text = "".join("| %s | %s | %s | %s | %s |\n" % (
        server.kind, prog, *("yes" if r[n] else "no" if r[n] is not None else "n/a"
                             for n in ("stpify", "proxychains4", "socksify")))
        for prog, r in rows)
    print(text)
    if MATRIX_OUT:
        with open(MATRIX_OUT, "a") as f:
            f.write(text)
    assert not worse, "stpify fails where another tool works: %s\n%s" % (worse, text)


# ---------------------------------------------------------------------------
# a proxy of the other family: the program's socket is replaced by a
# dual-stack one (src/shim/sockswap.c) with its flags and options


def stpd_on_v6(proxy_factory):
    """stpd listening on [::1] only."""
    port = services.free_port()
    return proxy_factory(kind="stpd", listen=False, port=port,
                         args=["--listen", "[::1]:%d" % port])


def v6_env(p):
    return {"STP_PROXY": "socks5h://[::1]:%d" % p.port}


TCP_SWAP_PROG = """
    import fcntl, os, select, socket, struct, sys
    host, port, mode, fam = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    family = socket.AF_INET6 if fam == "6" else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    if fam == "6":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 77)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 7, 0))
    tos = (socket.IPPROTO_IPV6, socket.IPV6_TCLASS) if fam == "6" else \
        (socket.IPPROTO_IP, socket.IP_TOS)
    s.setsockopt(*tos, 0x20)
    s.set_inheritable(True)  # no FD_CLOEXEC: the replacement must not add it
    if mode == "nonblock":
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        _, w, _ = select.select([], [s], [], 15)
        print("connect", rc == 115, bool(w), s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    else:
        s.connect((host, port))
        print("connect", True, True, 0)
    fl = fcntl.fcntl(s.fileno(), fcntl.F_GETFL)
    print("nonblock", bool(fl & os.O_NONBLOCK),
          "cloexec", bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC))
    print("opts", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
          s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
          s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
          s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
          struct.unpack("ii", s.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)),
          struct.unpack("ll", s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))[0],
          s.getsockopt(*tos))
    me, peer = s.getsockname(), s.getpeername()
    print("family", s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == family,
          "v6only", fam != "6" or s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1,
          "sockname", len(me) == (4 if fam == "6" else 2) and me[1] > 0,
          "peer", peer[1] == port)
    s.setblocking(True)
    s.sendall(b"swap ok\\n")
    print("echo", s.recv(100).decode().strip())
"""


def _tcp_swap_expect(mode):
    return ["connect True True 0",
            "nonblock %s cloexec False" % (mode == "nonblock"),
            "opts 1 1 77 131072 (1, 5) 7 32",
            "family True v6only True sockname True peer True",
            "echo swap ok"]


@pytest.mark.parametrize("mode", ["block", "nonblock"])
@pytest.mark.parametrize("target", ["127.0.0.1", "web.stp.test"])
def test_ipv6_proxy_tcp_from_ipv4_socket(proxy_factory, tmp_path, echo, target, mode):
    """Proxy on [::1] only; an AF_INET socket to an IPv4 literal or a name
    (a fake IPv4 address): the tunnel runs on a replacement socket that
    keeps the program's flags and options and answers in AF_INET."""
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "swap.py", TCP_SWAP_PROG)
    # the replacement socket itself (a multiplexed stream has no TCP options)
    r = t.run(argv + [target, str(echo.port), mode, "4"], STP_MUX="0", **v6_env(p))
    assert r.stdout.decode().splitlines() == _tcp_swap_expect(mode), r.stderr
    p.wait_log(r"client=\[::1\]:\d+ .*cmd=connect target=%s:%d" % (re.escape(target), echo.port))


@pytest.mark.parametrize("target", ["127.0.0.1", "web.stp.test"])
def test_ipv6_proxy_curl(proxy_factory, tmp_path, http, target):
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    r = t.run(["curl", "-4", "-sS", "--max-time", "15", "http://%s:%d/" % (target, http.port)],
              **v6_env(p))
    assert services.PAGE_MARKER.encode() in r.stdout, r.stderr


def test_ipv6_proxy_connect_failure_keeps_socket(proxy_factory, tmp_path):
    """A refused target through the IPv6 proxy: the mapped errno, blocking
    and not, as with a proxy of the socket's own family."""
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "err.py", ERRPROG)
    closed = services.free_port()
    r = t.run(argv + ["127.0.0.1", str(closed), "block"], **v6_env(p))
    assert r.stdout.split() == [b"ECONNREFUSED"], r.stderr
    r = t.run(argv + ["127.0.0.1", str(closed), "nonblock"], **v6_env(p))
    assert r.stdout.split() == [b"EINPROGRESS", b"ECONNREFUSED", b"nonblocking"], r.stderr


def test_ipv4_proxy_tcp_from_v6only_socket(proxy_factory, tmp_path, echo):
    """The other way round: an IPV6_V6ONLY socket to [::1] through stpd on
    127.0.0.1 (an IPv4-mapped proxy address is unreachable from it)."""
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "swap.py", TCP_SWAP_PROG)
    r = t.run(argv + ["::1", str(echo.port), "nonblock", "6"], STP_MUX="0")
    assert r.stdout.decode().splitlines() == _tcp_swap_expect("nonblock"), r.stderr


UDP_SWAP_PROG = """
    import fcntl, os, socket, sys
    fam, port, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    family = socket.AF_INET6 if fam == "6" else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM); s.settimeout(10)  # O_NONBLOCK
    s.set_inheritable(True)
    if fam == "6":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    for t in [t for t in targets if t.startswith("bind")]:  # bind or bind=PORT
        s.bind(("::" if fam == "6" else "0.0.0.0", int(t[5:] or 0)))
        targets.remove(t)
    bound = s.getsockname()
    peer = [t[5:] for t in targets if t.startswith("peer=")]
    targets = [t for t in targets if not t.startswith("peer=")]
    for i, host in enumerate(targets):
        msg = b"dgram %d" % i
        s.sendto(msg, (host, port))
        d, src = s.recvfrom(100)
        print(d.decode(), src[1] == port, len(src) == (4 if fam == "6" else 2),
              src[0] == host or src[0].startswith("240.") or src[0].startswith("fd73:"))
    me = s.getsockname()
    print("nonblock", bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK),
          "cloexec", bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC))
    print("family", s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == family,
          "v6only", fam != "6" or s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1,
          "rcvbuf", s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
          "sockname", me[0], me[1] > 0 and (bound[1] == 0 or me[1] == bound[1]))
    if peer:  # connect() to a direct peer: the kernel's, read in our family
        s.connect((peer[0], port))
        s.send(b"connected")
        print("peer", s.getpeername() == (peer[0], port), s.recv(100).decode())
"""


def udp_swap_state(wildcard):
    """What UDP_SWAP_PROG prints about its socket at the end."""
    return ["nonblock True cloexec False",
            "family True v6only True rcvbuf 131072 sockname %s True" % wildcard]


def test_ipv6_proxy_udp_from_ipv4_socket(proxy_factory, tmp_path, udp_echo):
    """Proxy on [::1] only; an AF_INET UDP socket (unbound, or bound by the
    program) to an IPv4 literal and to a name: the replies come back,
    reported in AF_INET, and the socket still reads as AF_INET."""
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "udpswap.py", UDP_SWAP_PROG)
    for extra in ([], ["bind"]):
        mark = p.log_mark()
        r = t.run(argv + ["4", str(udp_echo.port), "127.0.0.1", "web.stp.test"] + extra,
                  **v6_env(p))
        assert r.stdout.decode().splitlines() == [
            "dgram 0 True True True", "dgram 1 True True True"] + \
            udp_swap_state("0.0.0.0"), r.stderr
        m = p.wait_log(r"client=\[::1\]:\d+ .*: udp datagrams up=(\d+) down=(\d+)",
                       timeout=10, since=mark)
        assert (m.group(1), m.group(2)) == ("2", "2"), m.group(0)


def test_ipv6_proxy_udp_port_taken_in_other_family(proxy_factory, tmp_path, udp_echo):
    """The program bound 0.0.0.0:P and another socket holds [::1]:P: the
    dual-stack replacement cannot have P, takes another port, and the
    proxied traffic still flows (getsockname still says P)."""
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "udpswap.py", UDP_SWAP_PROG)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as holder:
        port = services.free_port()  # free in both families: the program can bind it
        holder.bind(("::1", port))
        r = t.run(argv + ["4", str(udp_echo.port), "127.0.0.1", "web.stp.test",
                          "bind=%d" % port], STP_LOG="info", **v6_env(p))
    assert r.stdout.decode().splitlines() == [
        "dgram 0 True True True", "dgram 1 True True True"] + \
        udp_swap_state("0.0.0.0"), r.stderr
    assert b"port %d is taken for IPv6, moving" % port in r.stderr


def test_ipv6_proxy_udp_direct_from_replaced_socket(proxy_factory, tmp_path, udp_echo):
    """After the replacement, a NO_PROXY destination of the program's family
    is still reached directly from the same socket, with sendto() and after
    connect() (getpeername() in AF_INET)."""
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "udpswap.py", UDP_SWAP_PROG)
    r = t.run(argv + ["4", str(udp_echo.port), "web.stp.test", "127.0.0.1", "peer=127.0.0.1"],
              NO_PROXY="127.0.0.1", **v6_env(p))
    assert r.stdout.decode().splitlines() == [
        "dgram 0 True True True", "dgram 1 True True True"] + \
        udp_swap_state("0.0.0.0") + ["peer True connected"], r.stderr
    m = p.wait_log(r"udp datagrams up=(\d+) down=(\d+)", timeout=10)
    assert (m.group(1), m.group(2)) == ("1", "1"), m.group(0)


@pytest.mark.parametrize("server_addr", ["127.0.0.1", "web.stp.test"])
def test_ipv6_proxy_dig(proxy_factory, tmp_path, dns, server_addr):
    """dig over UDP (AF_INET socket, connected) through a proxy on [::1]."""
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    r = t.run(["dig", "+short", "+tries=2", "+time=3", "@" + server_addr, "-p", str(dns.port),
               "web6.stp.test", "AAAA"], **v6_env(p))
    assert r.stdout.strip() == b"::1", r.stderr
    p.wait_log(r"client=\[::1\]:\d+ .*cmd=udpassociate .* up=[1-9]", timeout=10)


@pytest.fixture(scope="module")
def dns6(tmp_path_factory):
    """A dnsmasq on [::1] only, with the test names."""
    d = services.Dnsmasq(str(tmp_path_factory.mktemp("dns6")), listen="::1")
    yield d
    d.close()


def test_v6only_dig_through_ipv4_proxy(proxy_factory, tmp_path, dns6):
    """dig @::1 makes an IPV6_V6ONLY socket; stpd listens on 127.0.0.1, so
    its relay (::ffff:127.0.0.1 seen from IPv6) is out of that socket's
    reach: the socket is replaced by a dual-stack one."""
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    r = t.run(["dig", "+short", "+tries=2", "+time=3", "@::1", "-p", str(dns6.port),
               "web.stp.test", "A"])
    assert r.stdout.strip() == b"127.0.0.1", r.stderr
    m = p.wait_log(r"cmd=udpassociate .* up=(\d+) down=(\d+)", timeout=10)
    assert m.group(1) != "0" and m.group(2) != "0", m.group(0)


def test_v6only_udp_through_ipv4_proxy(proxy_factory, tmp_path, udp_echo):
    """A program that sets IPV6_V6ONLY, then sends to [::1] and to a name
    (a fake IPv6 address) through stpd on 127.0.0.1: the replies arrive and
    the socket still reads as IPv6-only, AF_INET6."""
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "udpswap.py", UDP_SWAP_PROG)
    for extra in ([], ["bind"]):
        r = t.run(argv + ["6", str(udp_echo.port), "::1", "web6.stp.test"] + extra)
        assert r.stdout.decode().splitlines() == [
            "dgram 0 True True True", "dgram 1 True True True"] + \
            udp_swap_state("::"), r.stderr


DIRECT_DROP_PROG = """
    import socket, sys
    fam, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if fam == "6" else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM); s.settimeout(10)
    if fam == "6":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.sendto(b"assoc", (name, port)); s.recvfrom(100)  # through the proxy
    print(s.getsockname()[1], flush=True)
    sys.stdin.readline()
    d, src = s.recvfrom(100)
    print(d.decode(), src[0], flush=True)
"""


@pytest.mark.parametrize("fam", ["4", "6"])
def test_replaced_udp_socket_drops_foreign_family(proxy_factory, tmp_path, udp_echo, fam):
    """The dual-stack replacement hears both families on its port; the
    program hears only what its own socket could have: an AF_INET socket no
    IPv6 source, an IPV6_V6ONLY socket no IPv4 source."""
    if fam == "4":
        p, name = stpd_on_v6(proxy_factory), "web.stp.test"
        env = v6_env(p)
        foreign, own = ("::1", socket.AF_INET6), ("127.0.0.1", socket.AF_INET)
    else:
        p, name, env = proxy_factory(kind="stpd"), "web6.stp.test", {}
        foreign, own = ("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "drop.py", DIRECT_DROP_PROG)
    full = servers._isolated(t.workdir, t.argv(argv + [fam, name, str(udp_echo.port)]),
                             test_names=False)
    proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=t.env(**env))
    try:
        port = int(proc.stdout.readline())
        for (host, family), msg in ((foreign, b"foreign"), (own, b"own")):
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.sendto(msg, (host, port))
        out, err = proc.communicate(b"go\n", timeout=20)
        assert out.decode().split() == ["own", own[0]], err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------
# a proxy name with addresses of both families (the test /etc/hosts gives
# localhost 127.0.0.1 and ::1) and the proxy on one of them: the socket's
# own family is tried first, then the other over a replacement socket


def test_proxy_name_v4_refused_then_v6_replacement(proxy_factory, tmp_path, echo):
    """An AF_INET socket, stpd on [::1] only: 127.0.0.1 refuses on the
    program's socket, then ::1 answers over the dual-stack replacement,
    which keeps the program's flags and options."""
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "swap.py", TCP_SWAP_PROG)
    r = t.run(argv + ["web.stp.test", str(echo.port), "nonblock", "4"],
              STP_PROXY="socks5h://localhost:%d" % p.port, STP_LOG="debug", STP_MUX="0")
    assert r.stdout.decode().splitlines() == _tcp_swap_expect("nonblock"), r.stderr
    err = r.stderr.decode()
    assert "proxy 127.0.0.1:%d: Connection refused" % p.port in err, err
    assert "replaced by an IPv6 socket" in err, err
    p.wait_log(r"client=\[::1\]:\d+ .*cmd=connect target=web\.stp\.test:%d" % echo.port)


def test_proxy_name_v6only_refused_then_v4_replacement(proxy_factory, tmp_path, echo):
    """An IPV6_V6ONLY socket, stpd on 127.0.0.1 only: [::1] refuses on the
    program's socket, ::ffff:127.0.0.1 is out of its reach, so it is tried
    over the replacement."""
    p = proxy_factory(kind="stpd")
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "swap.py", TCP_SWAP_PROG)
    r = t.run(argv + ["::1", str(echo.port), "block", "6"],
              STP_PROXY="socks5h://localhost:%d" % p.port, STP_LOG="debug", STP_MUX="0")
    assert r.stdout.decode().splitlines() == _tcp_swap_expect("block"), r.stderr
    err = r.stderr.decode()
    assert "proxy [::1]:%d: Connection refused" % p.port in err, err
    assert "replaced by an IPv6 socket" in err, err
    p.wait_log(r"cmd=connect target=\[?::1\]?:%d" % echo.port)


def test_proxy_name_all_refused_keeps_socket(tmp_path):
    """Nobody listens on either address: both are tried (the second over
    the replacement), connect() says ECONNREFUSED and the fd is still the
    program's socket."""
    class Down:
        port = services.free_port()  # free in both families
    port = Down.port
    prog = pyprog(tmp_path, "refused.py", """
        import errno, select, socket
        s = socket.socket(socket.AF_INET)
        rc = s.connect_ex(("web.stp.test", 80))
        print(errno.errorcode.get(rc, rc),
              s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET)
        s = socket.socket(socket.AF_INET); s.setblocking(False)
        rc = s.connect_ex(("web.stp.test", 80))
        select.select([], [s], [], 15)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        print(errno.errorcode.get(rc, rc), errno.errorcode.get(err, err))
    """)
    t = Tool("stpify", str(tmp_path), Down)
    r = t.run(prog, STP_PROXY="socks5h://localhost:%d" % port, STP_LOG="debug")
    assert r.stdout.split() == [b"ECONNREFUSED", b"True", b"EINPROGRESS", b"ECONNREFUSED"], \
        r.stderr
    err = r.stderr.decode()
    assert "proxy 127.0.0.1:%d: Connection refused" % port in err, err
    assert "proxy [::1]:%d (replacement socket): Connection refused" % port in err, err


def test_proxy_name_udp_v4_refused_then_v6(proxy_factory, tmp_path, udp_echo):
    """UDP from an AF_INET socket, stpd on [::1] only: the association's
    control connection is refused on 127.0.0.1, goes to [::1], and the
    socket is replaced to reach the IPv6 relay."""
    p = stpd_on_v6(proxy_factory)
    t = tool("stpify", p, tmp_path)
    argv = pyprog(tmp_path, "udpswap.py", UDP_SWAP_PROG)
    r = t.run(argv + ["4", str(udp_echo.port), "127.0.0.1", "web.stp.test"],
              STP_PROXY="socks5h://localhost:%d" % p.port, STP_LOG="debug")
    assert r.stdout.decode().splitlines() == [
        "dgram 0 True True True", "dgram 1 True True True"] + \
        udp_swap_state("0.0.0.0"), r.stderr
    assert b"proxy 127.0.0.1:%d: Connection refused" % p.port in r.stderr, r.stderr
    m = p.wait_log(r"client=\[::1\]:\d+ .*: udp datagrams up=(\d+) down=(\d+)", timeout=10)
    assert (m.group(1), m.group(2)) == ("2", "2"), m.group(0)


# The hooks' names (docs/stpify.md, "How the hooks are defined")


def _hook_names():
    """The libc names libstpify.so exports: the global list of stpify.map."""
    with open(os.path.join(servers.REPO, "src", "shim", "stpify.map")) as f:
        text = f.read()
    body = text.split("global:", 1)[1].split("local:", 1)[0]
    return sorted(n.strip() for n in body.replace("\n", " ").split(";") if n.strip())


def test_stpify_hooks_are_prefixed_aliases():
    """Each hook is defined as stpify_NAME and exported as NAME by alias:
    both symbols sit at one address, NAME is global, stpify_NAME is not."""
    lib = os.path.join(os.path.dirname(stpify_bin()), "libstpify.so")
    out = subprocess.run(["nm", "--defined-only", lib], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True, timeout=60).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = (parts[0], parts[1])
    names = _hook_names()
    assert len(names) >= 20
    for name in names:
        assert name in syms and syms[name][1] in "TW", name
        assert "stpify_" + name in syms, "no stpify_%s in %s" % (name, lib)
        addr, kind = syms["stpify_" + name]
        assert addr == syms[name][0], name
        assert kind == "t", "stpify_%s is exported (%s)" % (name, kind)


@pytest.mark.skipif(shutil.which("ctags-universal") is None, reason="universal-ctags missing")
def test_stpify_no_source_defines_a_libc_name():
    """An indexer run over src/ finds no function called connect, recv, close,
    write...: a jump to the definition of stpd's or libstp's own close() can
    only land in libc, and the shim's hooks are found as stpify_*."""
    src = os.path.join(servers.REPO, "src")
    out = subprocess.run(["ctags-universal", "-R", "-f", "-", "--languages=C", "--kinds-C=f",
                          src], stdout=subprocess.PIPE, check=True, universal_newlines=True,
                         timeout=120).stdout
    defined = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and not line.startswith("!_"):
            defined.setdefault(parts[0], []).append(parts[1])
    names = _hook_names()
    clash = {n: defined[n] for n in names if n in defined}
    assert clash == {}
    for name in names:
        assert any(p.endswith("src/shim/preload.c") for p in defined.get("stpify_" + name, [])), name
