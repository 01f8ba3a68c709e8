"""RFC 1929 (and X'86' sub-authentication) against directories started by
the tests (dirservers.py): OpenLDAP slapd (simple bind with a DN template,
search-then-bind, ldaps://, StartTLS, groups from memberOf and from a group
search) and FreeRADIUS (PAP, CHAP, fail-over). Group rules, a directory
that is down (refused at once, logged once), one that hangs (its own
logins time out, nobody else waits), and the cache of positive results
(the directory's own log shows it was not asked again).
"""

import os
import signal
import subprocess
import threading
import time

import pytest

import dirservers as D
import services
import socksraw as S
import stpdconf
from tls_fixtures import pki  # noqa: F401  (pki is a fixture)

FILE_USER, FILE_PW = "fuser", "file-Secret-9"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory, pki):  # noqa: F811
    s = D.Slapd(str(tmp_path_factory.mktemp("slapd")), pki)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def radius(tmp_path_factory):
    r = D.FreeRadius(str(tmp_path_factory.mktemp("radius")))
    yield r
    r.stop()


def write(tmp_path, name, text):
    p = os.path.join(str(tmp_path), name)
    with open(p, "w") as f:
        f.write(text + "\n")
    return p


def ldap_block(tmp_path, slapd, mode="search", uri=None, extra=""):
    lines = ["uri %s" % (uri or slapd.uri), "timeout 2"]
    if mode == "search":
        lines += ['bind-dn "%s"' % D.SERVICE_DN,
                  "bind-password-file %s" % write(tmp_path, "ldap-pw", D.SERVICE_PW),
                  'base "ou=people,%s"' % D.SUFFIX, 'filter "(uid=%u)"',
                  'group-base "ou=groups,%s"' % D.SUFFIX, 'group-filter "(member=%d)"']
    else:
        lines += ['user-dn "uid=%%u,ou=people,%s"' % D.SUFFIX, "group-attribute memberOf"]
    if extra:
        lines.append(extra)
    return "ldap {\n  %s\n}\n" % "\n  ".join(lines)


def radius_block(tmp_path, servers, method="pap", extra=""):
    return ("radius {\n  server %s\n  secret-file %s\n  timeout 2\n  retries 0\n"
            "  method %s\n  nas-identifier stp-test\n%s}\n" % (
                " ".join(servers), write(tmp_path, "radius-secret", D.RADIUS_SECRET), method,
                extra))


def start(stpd_factory, backends, blocks, echo, methods="userpass", auth_extra="",
          rules=None, users=None):
    users_kw = {}
    auth = "auth { methods %s; backend %s;" % (methods, backends)
    if "file" in backends.split():
        auth += " users-file $users;"
        users_kw = {"users": users or {FILE_USER: FILE_PW}}
    auth += " %s }\n" % auth_extra
    if rules is None:
        rules = "request pass { port %d }\n" % echo.port
    conf = stpdconf.conf(auth=auth, extra=blocks, request_rules=rules)
    return stpd_factory(conf=conf, **users_kw)


def login(proxy, user, pw, timeout=20.0):
    """RFC 1929 status (0 = accepted)."""
    s = S.dial(proxy.port, timeout=timeout)
    try:
        assert S.negotiate(s, (S.M_USERPASS,)) == S.M_USERPASS
        return S.userpass(s, user, pw)
    finally:
        s.close()


def connect_rep(proxy, user, pw, echo):
    """Logs in and CONNECTs to the echo service: the reply code, after
    checking the relay works when it is 0."""
    s, rep = S.open_connect(proxy.port, "127.0.0.1", echo.port, auth=(user, pw))
    try:
        if rep.rep == 0:
            assert S.echo_roundtrip(s, b"directory") == b"directory"
        return rep.rep
    finally:
        s.close()


def timed(fn, *a):
    t = time.monotonic()
    r = fn(*a)
    return r, time.monotonic() - t


# ---------------------------------------------------------------------------
# LDAP


def test_ldap_search_then_bind_groups_and_rules(stpd_factory, slapd, echo, tmp_path):
    """Search-then-bind with a service account; groups by a group search.
    Only members of 'web' reach the echo port; others get X'02'."""
    rules = "request pass { group web; port %d }\n" % echo.port
    p = start(stpd_factory, "ldap", ldap_block(tmp_path, slapd), echo, rules=rules)
    assert connect_rep(p, "lalice", "alice-Ldap-1", echo) == 0
    assert connect_rep(p, "lbob", "bob-Ldap-2", echo) == 0x02  # in ops, not web
    assert connect_rep(p, "lcarol", "carol-Ldap-3", echo) == 0x02  # no group
    assert login(p, "lalice", "wrong") == 1
    assert login(p, "nobody", "alice-Ldap-1") == 1
    # filter metacharacters in the name are escaped: no wildcard match
    assert login(p, "lal*", "alice-Ldap-1") == 1
    p.wait_log(r'auth failed .*user=nobody why="bad user name or password \(ldap: no such user\)"')
    p.wait_log(r'auth failed .*user=lalice why=".*ldap: bad password')
    # The service account searched; alice bound as herself.
    assert slapd.binds("cn=stpd,ou=services") >= 1
    assert slapd.binds("uid=lalice,ou=people") >= 1


def test_ldap_simple_bind_ldaps_memberof(stpd_factory, slapd, echo, tmp_path, pki):  # noqa: F811
    """Bind as the DN template over ldaps:// (checked against the test CA);
    groups from memberOf; a DN special character in the name is escaped."""
    blk = ldap_block(tmp_path, slapd, mode="simple", uri=slapd.ldaps_uri,
                     extra="ca-file %s" % pki.path("ca.pem"))
    rules = "request pass { group staff; port %d }\n" % echo.port
    p = start(stpd_factory, "ldap", blk, echo, rules=rules)
    assert connect_rep(p, "lalice", "alice-Ldap-1", echo) == 0
    assert connect_rep(p, "l,tricky", "tricky-Ldap-4", echo) == 0
    assert connect_rep(p, "lbob", "bob-Ldap-2", echo) == 0x02
    assert login(p, "lbob", "alice-Ldap-1") == 1


@pytest.mark.parametrize("mode", ["search", "bind"])
def test_quoted_group_names_from_ldap(stpd_factory, slapd, echo, tmp_path, mode):
    """Directory group names with spaces and quotes ('Domain Admins',
    'R&D "core"'), read by a group search (cn) or from memberOf (the DN's
    first RDN, unescaped), match rules that quote them."""
    for group in ('"Domain Admins"', r'"R&D \"core\""'):
        rules = "request pass { group %s; port %d }\n" % (group, echo.port)
        p = start(stpd_factory, "ldap", ldap_block(tmp_path, slapd, mode), echo, rules=rules)
        assert connect_rep(p, "ldan", "dan-Ldap-5", echo) == 0
        assert connect_rep(p, "lalice", "alice-Ldap-1", echo) == 0x02  # staff, web
        p.stop()
    # Unquoted, the name is two words: two groups, neither of them dan's.
    rules = "request pass { group Domain Admins; port %d }\n" % echo.port
    p = start(stpd_factory, "ldap", ldap_block(tmp_path, slapd, mode), echo, rules=rules)
    assert connect_rep(p, "ldan", "dan-Ldap-5", echo) == 0x02


def test_ldap_starttls_and_untrusted_ca(stpd_factory, slapd, echo, tmp_path, pki):  # noqa: F811
    good = ldap_block(tmp_path, slapd, extra="starttls on\n  ca-file %s" % pki.path("ca.pem"))
    p = start(stpd_factory, "ldap", good, echo)
    assert connect_rep(p, "lalice", "alice-Ldap-1", echo) == 0
    # A CA that did not sign slapd's certificate: no login, and the log says
    # the directory is unavailable rather than the password wrong.
    bad = ldap_block(tmp_path, slapd, extra="starttls on\n  ca-file %s" % pki.path("stranger.pem"))
    q = start(stpd_factory, "ldap", bad, echo)
    assert login(q, "lalice", "alice-Ldap-1") == 1
    q.wait_log(r"auth: ldap backend unavailable")


def test_ldap_ambiguous_filter(stpd_factory, slapd, echo, tmp_path):
    """A filter that finds several entries refuses the login: stpd never
    picks one of them."""
    blk = ldap_block(tmp_path, slapd).replace('filter "(uid=%u)"',
                                             'filter "(|(uid=%u)(uid=lbob))"')
    p = start(stpd_factory, "ldap", blk, echo)
    assert login(p, "lbob", "bob-Ldap-2") == 0  # one entry
    assert login(p, "lalice", "alice-Ldap-1") == 1  # two entries
    p.wait_log(r'user=lalice why=".*ldap: several entries match')


def test_ldaps_hung_times_out(stpd_factory, slapd, echo, tmp_path, pki):  # noqa: F811
    """A hung server behind ldaps://: the TLS handshake is bounded by the
    backend's timeout too."""
    blk = ldap_block(tmp_path, slapd, mode="simple", uri=slapd.ldaps_uri,
                     extra="ca-file %s" % pki.path("ca.pem"))
    p = start(stpd_factory, "ldap", blk, echo)
    slapd.pause()
    try:
        st, took = timed(login, p, "lalice", "alice-Ldap-1")
    finally:
        slapd.resume()
    assert st == 1
    assert 1.5 < took < 8.0, took
    p.wait_log(r'auth: ldap backend unavailable \(no answer within 2s\)')


def test_ldap_down_refused_quickly_logged_once(stpd_factory, echo, tmp_path, slapd):
    dead = "ldap://127.0.0.1:%d" % D.services.free_port()
    p = start(stpd_factory, "ldap", ldap_block(tmp_path, slapd, uri=dead), echo,
              auth_extra="down-time 30;")
    for _ in range(4):
        st, took = timed(login, p, "lalice", "alice-Ldap-1")
        assert st == 1
        assert took < 2.0
    p.wait_log(r'why=".*ldap: down, skipped')
    assert len(p.log_lines(r"auth: ldap backend unavailable")) == 1


def test_ldap_hung_stalls_only_its_own_logins(stpd_factory, slapd, echo, tmp_path):
    """slapd stopped (SIGSTOP): connections are accepted by the kernel and
    never answered. LDAP logins time out after the backend's timeout (2 s);
    meanwhile file users and X'00' sessions are served at once, even with
    more LDAP logins waiting than the LDAP lane has threads."""
    p = start(stpd_factory, "file ldap", ldap_block(tmp_path, slapd), echo,
              methods="userpass none")
    assert login(p, "lalice", "alice-Ldap-1") == 0  # warm: the chain works
    slapd.pause()
    try:
        results = []

        def ldap_login():
            results.append(timed(login, p, "lalice", "alice-Ldap-1"))

        threads = [threading.Thread(target=ldap_login) for _ in range(12)]
        for t in threads:
            t.start()
        # The LDAP lane is full: its 8 threads each hold a connection that
        # the stopped slapd's kernel accepted (local port = slapd's).
        services.wait_until(
            lambda: sum(1 for port, st in services._proc_sockets("tcp")
                        if port == slapd.port and st == "01") >= 8,
            20, what="8 connections to the stopped slapd")
        st, file_took = timed(connect_rep, p, FILE_USER, FILE_PW, echo)
        assert st == 0
        s, rep = S.open_connect(p.port, "127.0.0.1", echo.port)
        assert rep.rep == 0
        s.close()
        for t in threads:
            t.join(30)
    finally:
        slapd.resume()
    assert len(results) == 12
    assert all(r[0] == 1 for r in results), results
    # The LDAP logins waited for the backend's timeout (2 s; those queued
    # behind the lane's 8 threads were then skipped as down), none hung,
    # and the file user, who came later, did not wait for any of them.
    assert min(r[1] for r in results) > 1.5, results
    assert max(r[1] for r in results) < 10.0, results
    assert file_took < 1.5, file_took
    p.wait_log(r"auth: ldap backend unavailable")


def curl_via(proxy, user, pw, url):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(["curl", "-sS", "--max-time", "20", "--noproxy", "", "-x",
                           "socks5h://%s:%s@127.0.0.1:%d" % (user, pw, proxy.port), url],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, env=env)


def test_curl_and_pysocks_with_directory_users(stpd_factory, slapd, radius, http, tmp_path):
    """Real clients: curl and PySocks log in as LDAP and RADIUS (CHAP) users;
    the group rule lets the LDAP group 'web' and the RADIUS user ralice
    reach the web server, nobody else."""
    blocks = ldap_block(tmp_path, slapd) + radius_block(
        tmp_path, ["127.0.0.1:%d" % radius.port], method="chap")
    rules = ("request pass { group web; port %d }\n"
             "request pass { user ralice; port %d }\n" % (http.port, http.port))
    p = start(stpd_factory, "ldap radius", blocks, http, rules=rules)
    url = "http://127.0.0.1:%d/" % http.port
    r = curl_via(p, "lalice", "alice-Ldap-1", url)
    assert r.returncode == 0, r.stderr
    assert services.PAGE_MARKER in r.stdout.decode()
    r = curl_via(p, "ralice", "alice-Radius-1", url)
    assert r.returncode == 0, r.stderr
    assert services.PAGE_MARKER in r.stdout.decode()
    r = curl_via(p, "lbob", "bob-Ldap-2", url)  # authenticated, not in 'web'
    assert r.returncode != 0
    assert b"not allowed" in r.stderr or r.returncode == 97, r.stderr
    r = curl_via(p, "lalice", "wrong", url)
    assert r.returncode != 0
    p.wait_log(r"deny .*user=lbob ")

    import socks
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", p.port, username="lalice", password="alice-Ldap-1")
    s.settimeout(20)
    s.connect(("127.0.0.1", http.port))
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    body = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    s.close()
    assert services.PAGE_MARKER.encode() in body
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", p.port, username="ralice", password="nope")
    s.settimeout(20)
    with pytest.raises(socks.ProxyError):
        s.connect(("127.0.0.1", http.port))
    s.close()


# ---------------------------------------------------------------------------
# RADIUS


@pytest.mark.parametrize("method", ["pap", "chap"])
def test_radius_pap_chap(stpd_factory, radius, echo, tmp_path, method):
    srv = "127.0.0.1:%d" % radius.port
    rules = "request pass { user ralice; port %d }\n" % echo.port
    p = start(stpd_factory, "radius", radius_block(tmp_path, [srv], method), echo, rules=rules)
    before = radius.requests("ralice")
    assert connect_rep(p, "ralice", "alice-Radius-1", echo) == 0
    assert connect_rep(p, "rbob", "bob-Radius-2", echo) == 0x02  # rule: ralice only
    assert login(p, "ralice", "wrong-one") == 1
    assert login(p, "nobody", "x") == 1
    p.wait_log(r'user=nobody why=".*radius: rejected')
    assert radius.requests("ralice") == before + 2
    # Names and passwords longer than RADIUS carries are refused, and do
    # not make the backend look down to the next user.
    assert login(p, "u" * 255, "x") == 1
    assert login(p, "ralice", "p" * 200) == 1
    assert login(p, "ralice", "alice-Radius-1") == 0
    assert not p.log_lines(r"radius backend unavailable")
    log = radius.log()
    attr = "CHAP-Password" if method == "chap" else "User-Password"
    assert attr in log
    assert 'NAS-Identifier = "stp-test"' in log


def test_radius_groups_from_reply_attributes(stpd_factory, radius, echo, tmp_path):
    """freeradius answers ralice's Access-Accept with Class "web", Class
    "Domain Admins" and Filter-Id "ops" (dirservers.RADIUS_REPLY). With
    `group-attribute Class` those Class values are her groups; Filter-Id
    only when named too; without the key RADIUS users have no groups."""
    srv = "127.0.0.1:%d" % radius.port
    cases = [
        ("group-attribute Class", '"Domain Admins"', 0),
        ("group-attribute Class", "web", 0),
        ("group-attribute Class", "ops", 0x02),
        ("group-attribute Class Filter-Id", "ops", 0),
        ("group-attribute filter-id", "web", 0x02),
        ("", "web", 0x02),
    ]
    for key, group, want in cases:
        rules = "request pass { group %s; port %d }\n" % (group, echo.port)
        p = start(stpd_factory, "radius", radius_block(tmp_path, [srv], extra="  %s\n" % key),
                  echo, rules=rules)
        assert connect_rep(p, "ralice", "alice-Radius-1", echo) == want, (key, group)
        assert connect_rep(p, "rbob", "bob-Radius-2", echo) == 0x02  # no reply attributes
        p.stop()
    # freeradius logs the Class it sent (octets, in hex).
    assert "Class = 0x" + b"Domain Admins".hex() in radius.log()


def test_radius_failover_and_hung(stpd_factory, radius, echo, tmp_path):
    """The first server never answers (a closed port): the second answers
    after the first's timeout. With the real one stopped too, the login is
    refused after the timeouts, logged once, then skipped at once."""
    dead = "127.0.0.1:%d" % D.services.free_port()
    srv = "127.0.0.1:%d" % radius.port
    p = start(stpd_factory, "radius", radius_block(tmp_path, [dead, srv]), echo,
              auth_extra="down-time 30;")
    st, took = timed(login, p, "ralice", "alice-Radius-1")
    assert st == 0
    assert 1.9 < took < 6.0, took
    radius.pause()
    try:
        st, took = timed(login, p, "ralice", "alice-Radius-1")
        assert st == 1 and 3.9 < took < 10.0, took
        st, took = timed(login, p, "ralice", "alice-Radius-1")
        assert st == 1 and took < 1.0  # skipped while down
    finally:
        radius.resume()
    p.wait_log(r'why=".*radius: no answer from any server')
    assert len(p.log_lines(r"auth: radius backend unavailable")) == 1


# ---------------------------------------------------------------------------
# chain and cache


def test_chain_order(stpd_factory, slapd, radius, echo, tmp_path):
    """backend ldap radius file: each user is accepted by the backend that
    knows them; a name known nowhere is refused with every backend's
    reason."""
    blocks = ldap_block(tmp_path, slapd) + radius_block(
        tmp_path, ["127.0.0.1:%d" % radius.port])
    p = start(stpd_factory, "ldap radius file", blocks, echo)
    assert login(p, "lalice", "alice-Ldap-1") == 0
    assert login(p, "ralice", "alice-Radius-1") == 0
    assert login(p, FILE_USER, FILE_PW) == 0
    assert login(p, "ghost", "x") == 1
    p.wait_log(r'user=ghost why="bad user name or password \(ldap: no such user; '
               r'radius: rejected; file: rejected\)"')


def test_cache_hits_skip_the_directory(stpd_factory, slapd, radius, echo, tmp_path):
    blocks = ldap_block(tmp_path, slapd) + radius_block(
        tmp_path, ["127.0.0.1:%d" % radius.port])
    p = start(stpd_factory, "ldap radius", blocks, echo, auth_extra="cache-ttl 3;",
              rules="request pass { group web; port %d }\n" % echo.port)
    binds = slapd.binds("uid=lalice,ou=people")
    assert connect_rep(p, "lalice", "alice-Ldap-1", echo) == 0
    assert slapd.binds("uid=lalice,ou=people") == binds + 1
    # Within the TTL: accepted, groups kept (the rule needs 'web'), slapd
    # not asked.
    for _ in range(3):
        assert connect_rep(p, "lalice", "alice-Ldap-1", echo) == 0
    assert slapd.binds("uid=lalice,ou=people") == binds + 1
    # A wrong password is never answered from the cache.
    assert login(p, "lalice", "not-it") == 1
    assert slapd.binds("uid=lalice,ou=people") == binds + 2
    # RADIUS results are cached the same way.
    n = radius.requests("ralice")
    assert login(p, "ralice", "alice-Radius-1") == 0
    assert login(p, "ralice", "alice-Radius-1") == 0
    assert radius.requests("ralice") == n + 1
    # After the TTL the directory is asked again.
    time.sleep(3.2)
    assert login(p, "lalice", "alice-Ldap-1") == 0
    assert slapd.binds("uid=lalice,ou=people") == binds + 3


def test_reload_empties_the_cache_and_changes_backends(stpd_factory, slapd, radius, echo,
                                                       tmp_path):
    """SIGHUP: the new configuration's backends and an empty cache apply to
    the next logins; a bad secret file is refused and the old one stays."""
    blk = ldap_block(tmp_path, slapd)
    p = start(stpd_factory, "ldap", blk, echo, auth_extra="cache-ttl 60;")
    binds = slapd.binds("uid=lbob,ou=people")
    assert login(p, "lbob", "bob-Ldap-2") == 0
    assert login(p, "lbob", "bob-Ldap-2") == 0
    assert slapd.binds("uid=lbob,ou=people") == binds + 1
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"configuration reloaded", since=mark)
    assert login(p, "lbob", "bob-Ldap-2") == 0
    assert slapd.binds("uid=lbob,ou=people") == binds + 2
    # Now RADIUS only: LDAP users are refused, RADIUS users accepted.
    conf = stpdconf.conf(auth="auth { methods userpass; backend radius; }\n",
                         extra=radius_block(tmp_path, ["127.0.0.1:%d" % radius.port]),
                         request_rules="request pass { }\n")
    p.write_conf(conf)
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"configuration reloaded", since=mark)
    assert login(p, "ralice", "alice-Radius-1") == 0
    assert login(p, "lbob", "bob-Ldap-2") == 1
    # A missing secret file: the reload is refused, RADIUS keeps working.
    p.write_conf(conf.replace(os.path.join(str(tmp_path), "radius-secret"),
                              os.path.join(str(tmp_path), "missing")))
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"\.conf:\d+: .*missing: No such file", since=mark)
    assert login(p, "ralice", "alice-Radius-1") == 0


def test_cache_off_asks_every_time(stpd_factory, slapd, echo, tmp_path):
    p = start(stpd_factory, "ldap", ldap_block(tmp_path, slapd), echo)
    binds = slapd.binds("uid=lcarol,ou=people")
    for _ in range(3):
        assert login(p, "lcarol", "carol-Ldap-3") == 0
    assert slapd.binds("uid=lcarol,ou=people") == binds + 3


# ---------------------------------------------------------------------------
# X'86' sub-authentication


@pytest.mark.stpd_module("tls")
def test_x86_subauth_with_ldap_user(stpd_factory, slapd, echo, tmp_path, pki):  # noqa: F811
    import x86_client as X
    conf = ("listen 127.0.0.1:$port\nresolver $dns\n"
            "auth { methods ssl; backend ldap; }\n"
            "tls { cert %s; key %s; subauth userpass; }\n" % (
                pki.path("server.pem"), pki.path("server.key"))
            + ldap_block(tmp_path, slapd) + stpdconf.LOOPBACK_CLIENTS
            + "request pass { group web; port %d }\n" % echo.port)
    p = stpd_factory(conf=conf)
    for user, pw, want in (("lalice", "alice-Ldap-1", 0), ("lalice", "nope", 1)):
        c = X.X86Client("127.0.0.1", p.port, pki.client_context(), server_hostname="localhost")
        assert c.greeting([X.METHOD_SSL]) == X.METHOD_SSL
        c.handshake()
        assert X.OPT_SUBAUTH in c.options([X.OPT_SUBAUTH])
        assert c.subauth_methods([0x02]) == 0x02
        assert c.userpass(user, pw) == want
        if want == 0:
            rep, _, _ = c.connect("127.0.0.1", echo.port)
            assert rep == 0
            c.send_plain(X.DATA, b"over tls")
            assert c.recv_plain(8, X.DATA) == b"over tls"
            c.close()
        else:
            c.abort()
