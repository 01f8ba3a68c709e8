"""Memory soak, short (bench/soak.py; docs/operations.md "Memory"): 45 s of
connection churn from 4 client threads (RFC 1929 logins, CONNECT + echo of
1 B to 60 kB, UDP ASSOCIATE + a datagram, refused logins) against stpd; with
the tls extension also TLS 1.2 and 1.3 sessions: socks5+tls over a `tls on`
listener and X'86' with RFC 1929 sub-authentication, each with CONNECT + echo,
and sessions of both kinds dropped by the client mid-handshake.
After a 15 s warm-up its RSS stays within 4 MiB of the warm-up's (a plain
build; under ASan, with its quarantine cut to 4 MiB, 8 MiB),
its threads stay as they were, and once the load ends its open fds come back
to the count of an idle stpd after the warm-up. Every echo comes back
intact, every kind of session ran, stpd stays up and exits 0 on SIGTERM
(with ASan: no leak found)."""

import json
import os
import subprocess

import pytest

import servers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _stpd_only():
    if servers.server_kind() != "stpd":
        pytest.skip("soaks stpd (running against %s)" % servers.server_kind())


def sanitized(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def test_soak_short():
    binary = servers.stpd_binary()
    bound, env = 4096, dict(os.environ)
    if sanitized(binary):
        # ASan holds freed blocks in its quarantine (256 MiB by default) to
        # catch use-after-free: keep it small so RSS says something.
        bound = 8192
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + \
            ":quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
    r = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "bench/soak.py"),
                        "--stpd", binary, "--duration", "45", "--warmup", "15",
                        "--interval", "3", "--clients", "4", "--max-growth", str(bound),
                        "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180, env=env)
    err = r.stderr.decode()[-3000:]
    res = json.loads(r.stdout)
    print(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=1))
    assert not res["problems"], (res["problems"], err)
    assert r.returncode == 0, err
    assert res["exit_status"] == 0  # and with ASan, LeakSanitizer found nothing
    assert res["rss_growth_after_warmup_kib"] <= bound
    assert res["fds_after_load"] <= res["fds_idle_after_warmup"]
    after = [s for s in res["samples"] if s["t"] >= res["after_warmup"]["t"]]
    assert len(after) >= 5, res["samples"]  # it sampled through the soak
    assert {s["threads"] for s in after} == {res["after_warmup"]["threads"]}
    c = res["sessions"]
    assert c["errors"] == 0 and c["connect"] > 100 and c["udp"] > 10 and c["badlogin"] > 10, c
    # A leak in the TLS path (one SSL object or BIO per session) would show.
    assert res["tls"] == ("tls" in servers.stpd_modules(binary)), res["tls"]
    if res["tls"]:
        assert c["tls"] > 50 and c["x86"] > 50, c
        assert c["tls_abort"] > 20 and c["x86_abort"] > 20, c
