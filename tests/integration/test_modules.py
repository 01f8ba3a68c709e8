"""The extensions built into stpd (meson options ext_tls, ext_mcast;
docs/architecture.md "Libraries and build options"): `stpd -V` names them,
and a configuration that relies on one stpd was built without is refused
by `stpd -t` with the option to turn on, instead of a "tls on" listener
quietly serving plaintext or multicast rules matching nothing. Runs
against any build: with a module, the same files check OK. stpd only."""

import subprocess

import pytest

import servers

# Config files that rely on one module each, with what the refusal names.
USES = {
    "tls": [
        ("listen 127.0.0.1:1080 { tls on }\ntls { cert c.pem; key k.pem }\n",
         "a listener with tls or require-tls"),
        ("auth { methods ssl }\ntls { cert c.pem; key k.pem }\n", "auth method ssl"),
        ("tls { min-version 1.3 }\n", "a tls block"),
        ("client pass { from 127.0.0.0/8; require-tls on }\n",
         "a client rule with require-tls"),
    ],
    "mcast": [
        ("mcast { ttl 4 }\n", "an mcast block"),
        ("request pass { command mcast-join }\n", "a request rule for mcast-join/mcast-leave"),
    ],
}
EXT_NAME = {"tls": "TLS", "mcast": "multicast"}


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
    assert mods <= {"tls", "core", "mcast"}


@pytest.mark.parametrize("module,text,why",
                         [(m, t, w) for m, cases in USES.items() for t, w in cases])
def test_config_needs_module(tmp_path, module, text, why):
    rc, out, path = check(tmp_path, text)
    if module in servers.stpd_modules(servers.stpd_binary()):
        assert rc == 0, out
        assert "configuration OK" in out
    else:
        assert rc == 1
        assert out.strip() == ("%s: %s needs the %s extension, and this stpd was built "
                               "without it (meson option ext_%s=false)"
                               % (path, why, EXT_NAME[module], module))
