"""The extensions built into stpd (meson options ext_tls, ext_mcast,
ext_resolve, ext_gssapi, ext_autoconf, ext_discovery, ext_transparent, ext_bind,
ext_compartment, ext_tunnel, ext_metrics, ext_mux;
docs/architecture.md "Libraries and build options"): `stpd -V` names them,
and a configuration that relies on one stpd was built without is refused
by `stpd -t` with the option to turn on, instead of a "tls on" listener
quietly serving plaintext or multicast rules matching nothing. Runs
against any build: with a module, the same files check OK. stpd only."""

import subprocess

import pytest

import servers

# Config files that rely on one module each, with the word and line the
# refusal names.
USES = {
    "tls": [
        ("listen 127.0.0.1:1080 { tls on }\ntls { cert c.pem; key k.pem }\n", "tls", 1),
        ("auth { methods ssl }\ntls { cert c.pem; key k.pem }\n", "tls", 2),
        ("tls { min-version 1.3 }\n", "tls", 1),
        ("client pass { from 127.0.0.0/8; require-tls on }\n", "require-tls", 1),
    ],
    "mcast": [
        ("mcast { ttl 4 }\n", "mcast", 1),
        ("request pass { command mcast-join }\n", "mcast-join", 1),
    ],
    "resolve": [
        ("request block { command resolve; to .blocked.test }\n", "resolve", 1),
        ("request pass { from 127.0.0.0/8 }\nrequest block { command resolve-ptr }\n",
         "resolve-ptr", 2),
        ("request pass { command dns; to .example.test }\n", "dns", 1),
        ("dns-cache { entries 0 }\n", "dns-cache", 1),
    ],
    "gssapi": [
        ("auth { methods gssapi }\ngssapi { protection integrity }\n", "gssapi", 2),
    ],
    "autoconf": [
        ("autoconfig { profile p }\n", "autoconfig", 1),
        ("request pass { command autoconfig }\n", "autoconfig", 1),
    ],
    "discovery": [
        ("request block { command discover; from 10.0.0.0/8 }\n", "discover", 1),
    ],
    "transparent": [
        ("transparent { idle 60 }\n", "transparent", 1),
        ("request pass { command transparent; ptcl udp }\n", "ptcl", 1),
    ],
    "bind": [
        ("binds { max-binds 4 }\n", "binds", 1),
        ("request pass { command listen udpbind }\n", "listen", 1),
    ],
    "compartment": [
        ("compartments { compartment a netns /proc/self/ns/net }\n", "compartments", 1),
        ("request pass { to-compartment host }\n", "to-compartment", 1),
    ],
    "tunnel": [
        ("tunnel { idle 60 }\n", "tunnel", 1),
        ("request pass { command tunnel-relay; to 10.0.0.0/8 }\n", "tunnel-relay", 1),
    ],
    "metrics": [
        ("metrics { http 127.0.0.1:9180; allow 127.0.0.0/8 }\n", "metrics", 1),
    ],
    "mux": [
        ("mux { max-streams 8 }\n", "mux", 1),
        ("request block { command mux }\n", "mux", 1),
    ],
}
EXT_NAME = {"tls": "TLS", "mcast": "multicast", "resolve": "RESOLVE", "gssapi": "GSS-API",
            "autoconf": "autoconfig", "discovery": "feature discovery",
            "transparent": "TRANSPARENT", "bind": "bind", "compartment": "compartment",
            "tunnel": "tunnel", "metrics": "metrics", "mux": "multiplexing"}


@pytest.fixture(autouse=True)
def _stpd_only():
    if servers.server_kind() != "stpd":
        pytest.skip("stpd's build options (running against %s)" % servers.server_kind())


def check(tmp_path, text):
    path = tmp_path / "stpd.conf"
    path.write_text(text)
    r = subprocess.run([servers.stpd_binary(), "-t", "-c", str(path)], capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr, str(path)


def test_version_lists_modules():
    mods = servers.stpd_modules(servers.stpd_binary())
    assert "core" in mods
    assert mods <= {"tls", "core", "mcast", "resolve", "gssapi", "autoconf", "discovery",
                    "transparent", "bind", "compartment", "tunnel", "metrics", "mux"}


@pytest.mark.parametrize("module,text,word,line",
                         [(m, t, w, n) for m, cases in USES.items() for t, w, n in cases])
def test_config_needs_module(tmp_path, module, text, word, line):
    rc, out, path = check(tmp_path, text)
    if module in servers.stpd_modules(servers.stpd_binary()):
        assert rc == 0, out
        assert "configuration OK" in out
    else:
        assert rc == 1
        assert ("%s:%d: '%s' needs the %s extension, and this stpd was built without it "
                "(meson option ext_%s=false)" % (path, line, word, EXT_NAME[module], module)
                in out), out


def test_method_ssl_needs_tls(tmp_path):
    """The one use the parser cannot see: a core method name."""
    rc, out, path = check(tmp_path, "auth { methods ssl }\n")
    assert rc == 1
    if "tls" in servers.stpd_modules(servers.stpd_binary()):
        assert "need 'cert' and 'key'" in out, out
    else:
        assert out.strip() == ("%s: auth method ssl needs the TLS extension, and this stpd "
                               "was built without it (meson option ext_tls=false)" % path)


def test_method_gssapi_needs_gssapi(tmp_path):
    """auth { methods gssapi } alone: a core method name the parser knows."""
    rc, out, path = check(tmp_path, "auth { methods gssapi }\n")
    if "gssapi" in servers.stpd_modules(servers.stpd_binary()):
        assert rc == 0 and "configuration OK" in out, out
    else:
        assert rc == 1
        assert out.strip() == ("%s: auth method gssapi needs the GSS-API extension, and this "
                               "stpd was built without it (meson option ext_gssapi=false)"
                               % path)
def test_discovery_method_with_or_without_module(stpd_factory):
    """X'87' next to X'00' gets X'00' with or without the discovery module
    (X'87' is its last preference; without it, an unknown method, as RFC
    1928 says). X'87' alone: the features document with the module, X'FF'
    without (docs/protocol.md 5.6)."""
    import socksraw as S
    p = stpd_factory()
    has = "discovery" in servers.stpd_modules(servers.stpd_binary())
    s = S.dial(p.port)
    with s:
        assert S.negotiate(s, (0x87, S.M_NONE)) == S.M_NONE
    s = S.dial(p.port)
    with s:
        assert S.negotiate(s, (0x87,)) == (0x87 if has else S.M_NOACCEPT)
def test_transparent_engine_reported(tmp_path):
    """`stpd -t` says which TRANSPARENT relay engine runs; one this build
    lacks is refused at its line."""
    if "transparent" not in servers.stpd_modules(servers.stpd_binary()):
        # Without the module the block is refused, naming the option.
        rc, out, path = check(tmp_path, "transparent { engine user }\n")
        assert rc == 1 and "ext_transparent=false" in out, out
        rc, out, path = check(tmp_path, "")
        assert rc == 0 and out.strip() == "configuration OK", out
        return
    rc, out, path = check(tmp_path, "transparent { engine user }\n")
    assert rc == 0 and "transparent: engine user\nconfiguration OK" in out, out
    rc, out, path = check(tmp_path, "")  # no block: the plain answer
    assert rc == 0 and out.strip() == "configuration OK", out
    rc, out, path = check(tmp_path, "transparent {\n engine remote\n relay unix:/x\n}\n")
    if rc != 0:
        assert "%s:2: engine 'remote' is not built in" % path in out, out
    else:
        assert "transparent: engine remote" in out, out
    rc, out, path = check(tmp_path, "transparent {\n engine kernel\n}\n")
    if rc != 0:
        assert "%s:2: engine 'kernel' is not built in" % path in out, out
    else:
        assert "transparent: engine kernel\nconfiguration OK" in out, out
