"""The package tests use the end-to-end tests' fixtures (a dnsmasq, an echo
service, stpd started by proxy_factory): loaded from tests/integration."""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
IT = os.path.join(os.path.dirname(HERE), "integration")
sys.path.insert(0, IT)

_spec = importlib.util.spec_from_file_location("integration_conftest",
                                               os.path.join(IT, "conftest.py"))
_it = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_it)

pytest_configure = _it.pytest_configure
session_dir, dns, echo, port = _it.session_dir, _it.dns, _it.echo, _it.port
proxy_factory, proxy = _it.proxy_factory, _it.proxy
