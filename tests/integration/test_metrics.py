"""Metrics and the status page (docs/operations.md, docs/config.md
"metrics"): counters that move by exactly what real traffic did (sessions,
bytes both ways, reply codes, authentications by method and backend, DNS
look-ups), the open sessions by command and state, the listener's `allow`
(also after a reload), the status page rendered by headless Chromium with
an active session in its DOM and real pixels in its screenshot, and
`stp status` printing the same from the shell."""

import os
import re
import shutil
import signal
import socket
import subprocess

import pytest

import services
import socksraw as S
import stpdconf

pytestmark = pytest.mark.stpd_module("metrics")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')


def stp_binary():
    b = os.environ.get("STP") or os.path.join(
        os.path.dirname(os.path.dirname(os.environ.get(
            "STPD", os.path.join(REPO, "build/src/server/stpd")))), "cli", "stp")
    if not os.path.exists(b):
        pytest.fail("stp not found at %s (set STP=)" % b)
    return b


def fetch(port, path="/metrics", source="127.0.0.1", method="GET"):
    """(status, content type, body) of one HTTP/1.0 request; (None, None,
    b"") when the server closes the connection without an answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    with s:
        try:
            s.sendall(("%s %s HTTP/1.0\r\nHost: x\r\n\r\n" % (method, path)).encode())
            data = S.recv_all(s)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
    if not data:
        return None, None, ""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    ctype = [ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("content-type:")]
    return int(lines[0].split()[1]), ctype[0] if ctype else None, body.decode()


def parse(text):
    """{(name, labels-as-sorted-tuple): value}; checks the exposition format:
    every sample belongs to a family with HELP and TYPE before it."""
    typed, out = set(), {}
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            typed.add(ln.split()[2])
            continue
        if ln.startswith("#") or not ln:
            continue
        m = SAMPLE.match(ln)
        assert m, "bad sample line %r" % ln
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, "%s has no TYPE" % name
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(3) or "")))
        out[(name, labels)] = float(m.group(4))
    return out


def scrape(port):
    st, ctype, body = fetch(port)
    assert st == 200 and ctype.startswith("text/plain; version=0.0.4"), (st, ctype)
    return parse(body)


def val(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def total(m, name, **labels):
    """Sum over the samples of name whose labels include these."""
    return sum(v for (n, ls), v in m.items()
               if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


def metrics_conf(mp, extra_metrics="", auth=""):
    return stpdconf.conf(auth=auth,
                         extra="metrics {\n\thttp 127.0.0.1:%d\n%s}\n" % (mp, extra_metrics))


def echo_through(proxy_port, host, port, payload, auth=None):
    s, rep = S.open_connect(proxy_port, host, port, auth=auth)
    with s:
        assert rep.rep == 0, rep
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = S.recv_all(s)
    assert got == payload


def wait_idle(mp):
    """Until no session is open (the counters of ended sessions are final)."""
    return services.wait_until(
        lambda: (lambda m: m if total(m, "stp_worker_sessions") == 0 else None)(scrape(mp)),
        15, what="sessions to end")


def test_counters_follow_traffic(stpd_factory, echo):
    mp = services.free_port()
    p = stpd_factory(conf=metrics_conf(mp, auth=stpdconf.userpass_auth()),
                     users={"alice": "secret"})
    p.wait_log(r"metrics: serving http://127\.0\.0\.1:%d/metrics" % mp)
    before = scrape(mp)
    sizes = [1000, 20000, 300000, 4000, 5]
    for n in sizes:
        echo_through(p.port, "127.0.0.1", echo.port, os.urandom(n), auth=("alice", "secret"))
    echo_through(p.port, "web.stp.test", echo.port, b"x" * 777, auth=("alice", "secret"))
    closed_port = services.free_port()
    s, rep = S.open_connect(p.port, "127.0.0.1", closed_port, auth=("alice", "secret"))
    s.close()
    assert rep.rep == 0x05
    with pytest.raises(PermissionError):
        S.open_connect(p.port, "127.0.0.1", echo.port, auth=("alice", "wrong"))
    after = wait_idle(mp)

    def d(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert d("stp_sessions_accepted_total") == 8
    assert d("stp_sessions_closed_total", cmd="connect") == 7
    assert d("stp_sessions_closed_total", cmd="none") == 1  # the bad password
    assert d("stp_replies_total", code="0x00") == 6
    assert d("stp_replies_total", code="0x05") == 1
    assert d("stp_bytes_total", direction="up") == sum(sizes) + 777
    assert d("stp_bytes_total", direction="down") == sum(sizes) + 777
    assert d("stp_auth_total", method="userpass", backend="file", result="ok") == 7
    assert d("stp_auth_total", method="userpass", result="fail") == 1
    assert d("stp_dns_lookup_seconds_count") == 1
    assert d("stp_dns_lookups_failed_total") == 0
    assert val(after, "stp_dns_lookup_seconds_bucket", le="+Inf") == \
        val(after, "stp_dns_lookup_seconds_count")
    assert d("stp_worker_loop_iterations_total") > 0
    assert total(after, "stp_limits_hit_total") == 0
    assert total(after, "stp_sessions_open") == 0


def test_limits_hit(stpd_factory, echo):
    mp = services.free_port()
    p = stpd_factory(conf=metrics_conf(mp) .replace(
        "metrics {", "limits { sessions-per-client 1 }\nmetrics {"))
    p.wait_log(r"metrics: serving")
    s, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
    with s:
        assert rep.rep == 0
        for _ in range(3):
            r = S.dial(p.port)
            with r:
                r.sendall(S.greeting())
                assert S.recv_all(r) == b"\x05\xff"  # refused: no acceptable method
        m = scrape(mp)
        assert val(m, "stp_limits_hit_total", limit="sessions-per-client") == 3
        assert val(m, "stp_sessions_open", cmd="connect", code="0x01", state="relay") == 1


def screenshot_variance(png):
    """Variance of the screenshot's grey levels (ffmpeg decodes the PNG)."""
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", png, "-f", "rawvideo", "-pix_fmt",
                        "gray", "-"], stdout=subprocess.PIPE, timeout=60, check=True)
    px = r.stdout
    assert len(px) >= 1200 * 900
    mean = sum(px) / len(px)
    return sum((b - mean) ** 2 for b in px[::7]) / len(px[::7]), len(set(px))


def chromium(url, tmp_path, *what):
    b = shutil.which("chromium")
    if not b:
        pytest.fail("chromium missing (scripts/deps.sh installs it)")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    argv = [b, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
            "--user-data-dir=%s" % (tmp_path / "chrome"), "--window-size=1200,900"]
    r = subprocess.run(argv + list(what) + [url], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120, env=env)
    return r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")[-2000:]


def test_status_page_and_stp_status(stpd_factory, echo, tmp_path):
    mp = services.free_port()
    p = stpd_factory(conf=metrics_conf(mp))
    p.wait_log(r"metrics: serving")
    s, rep = S.open_connect(p.port, "web.stp.test", echo.port)
    with s:
        assert rep.rep == 0
        s.sendall(b"y" * 123)
        assert S.recv_exact(s, 123) == b"y" * 123
        target = "web.stp.test:%d" % echo.port

        m = scrape(mp)
        assert val(m, "stp_sessions_open", cmd="connect", code="0x01", state="relay") == 1
        assert total(m, "stp_worker_sessions") == 1

        # the text form, from the shell
        r = subprocess.run([stp_binary(), "status", "http://127.0.0.1:%d" % mp],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 0, r.stderr
        out = r.stdout.decode()
        assert re.search(r"^sessions open\s+1$", out, re.M), out
        row = [ln for ln in out.splitlines() if target in ln]
        assert len(row) == 1 and " connect " in row[0] and " relay " in row[0], out
        assert re.search(r"\b123\s+123\s", row[0]), row[0]  # bytes up and down so far
        r = subprocess.run([stp_binary(), "status", "--metrics", "http://127.0.0.1:%d/" % mp],
                           stdout=subprocess.PIPE, timeout=30)
        assert r.returncode == 0 and b"stp_sessions_accepted_total 1" in r.stdout

        # the page, rendered by a browser
        url = "http://127.0.0.1:%d/" % mp
        dom, err = chromium(url, tmp_path, "--dump-dom")
        assert "<title>stpd status</title>" in dom, err
        rows = re.findall(r'<tr class="session">(.*?)</tr>', dom, re.S)
        assert len(rows) == 1 and target in rows[0] and "relay" in rows[0], dom[-3000:]
        shot = str(tmp_path / "status.png")
        _, err = chromium(url, tmp_path, "--screenshot=%s" % shot)
        assert os.path.exists(shot), err
        var, levels = screenshot_variance(shot)
        assert var > 100 and levels > 8, (var, levels)  # text and tables, not a blank page
    wait_idle(mp)
    # a client's target name is escaped on the page
    st, ctype, body = fetch(mp, "/")
    assert st == 200 and ctype.startswith("text/html")
    assert "<script" not in body and "http://" not in body.replace(
        'href="/metrics"', "")  # no external assets


def test_allow_and_reload(stpd_factory):
    mp = services.free_port()
    p = stpd_factory(conf=metrics_conf(mp, "\tallow 127.0.0.2\n"))
    p.wait_log(r"metrics: serving")
    assert fetch(mp, source="127.0.0.1")[0] is None
    p.wait_log(r"metrics: refused 127\.0\.0\.1:\d+: not in 'allow'")
    assert fetch(mp, source="127.0.0.2")[0] == 200
    assert fetch(mp, "/nothing", source="127.0.0.2")[0] == 404
    assert fetch(mp, "/metrics", source="127.0.0.2", method="POST")[0] == 405
    p.write_conf(metrics_conf(mp, "\tallow 127.0.0.1/32 ::1\n"))
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"reload|configuration", since=mark)
    services.wait_until(lambda: fetch(mp, source="127.0.0.1")[0] == 200, 10,
                        what="allow to change on reload")
    assert fetch(mp, source="127.0.0.2")[0] is None


def test_default_allow_is_loopback(stpd_factory):
    mp = services.free_port()
    p = stpd_factory(conf=metrics_conf(mp))
    p.wait_log(r"metrics: serving")
    assert fetch(mp, source="127.0.0.3")[0] == 200


@pytest.mark.parametrize("body,msg", [
    ("\thttp nowhere\n", r"bad address 'nowhere' for 'http'"),
    ("\tallow 10.0.0.0/99\n", r"bad address or CIDR '10\.0\.0\.0/99' for 'allow'"),
])
def test_config_errors(tmp_path, body, msg):
    path = tmp_path / "stpd.conf"
    path.write_text("listen 127.0.0.1:1080\nmetrics {\n%s}\n" % body)
    stpd = os.environ.get("STPD", os.path.join(REPO, "build/src/server/stpd"))
    r = subprocess.run([stpd, "-t", "-c", str(path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert r.returncode != 0
    assert re.search(r"stpd\.conf:3: " + msg, r.stderr.decode()), r.stderr
