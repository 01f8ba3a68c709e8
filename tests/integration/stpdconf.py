"""stpd configuration text for the tests (grammar: docs/config.md).

Kept in one place so a grammar change touches one file. Texts are
string.Template: $port $dns $users $workdir are filled in by servers.Stpd.
"""

LOOPBACK_CLIENTS = """\
client pass { from 127.0.0.0/8 }
client pass { from ::1/128 }
"""


def timeouts(**kw):
    """timeouts { handshake 2; connect 2; } from handshake=2, connect=2."""
    if not kw:
        return ""
    body = " ".join("%s %s;" % (k.replace("_", "-"), v) for k, v in kw.items())
    return "timeouts { %s }\n" % body


def conf(request_rules="request pass { }\n", client_rules=LOOPBACK_CLIENTS, extra="",
         listen="listen 127.0.0.1:$port\n", resolver="resolver $dns\n", auth=""):
    return listen + resolver + auth + extra + client_rules + request_rules


def userpass_auth():
    return "auth { methods userpass; backend file; users-file $users; }\n"


def line_of(text, needle):
    """1-based number of the first line of text containing needle."""
    for i, ln in enumerate(text.splitlines(), 1):
        if needle in ln:
            return i
    raise ValueError("%r not in config" % needle)
