"""Streamlit's own command line, minus the one outbound call no config option switches off.

Streamlit asks checkip.amazonaws.com for the machine's public IP when it prints the
start-up banner for a wildcard address (`faceqa app` hides the banner) and whenever a
browser connects from an origin it does not recognise, to see whether that origin is
the machine itself. faceqa makes no outbound calls, so here that lookup always answers
"unknown": a cross-origin connection is judged by `server.corsAllowedOrigins` alone.
`faceqa app` starts Streamlit through this module (`python -m faceqa.app.launch run ...`).
"""

from __future__ import annotations

from streamlit import net_util
from streamlit.web import cli


def _unknown_external_ip() -> str | None:
    return None


def main() -> None:
    net_util.get_external_ip = _unknown_external_ip
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
