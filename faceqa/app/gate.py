"""The chat page's door: with a password set, nothing of the page is shown until it is typed.

`faceqa app --password` (or FACEQA_APP_PASSWORD) hands the password to Streamlit's
process in the environment variable `PASSWORD_ENV`, never on the command line where
`ps` would show it. The page calls `require_password()` first thing: without a password
configured it returns at once (loopback use), unless the server listens off loopback,
which it then refuses to serve at all; with one, it asks for it and stops the script
until this browser session has given it (compared in constant time). A session that
got in stays in until it ends.
"""

from __future__ import annotations

import hmac
import os

from faceqa.app.config import is_loopback

PASSWORD_ENV = "FACEQA_APP_PASSWORD"
_ADMITTED = "faceqa_gate_admitted"


def require_password() -> None:
    """Return when this session may see the page; otherwise draw the door and stop the script."""
    import streamlit as st  # here, so that `faceqa app` can read PASSWORD_ENV without loading Streamlit

    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        address = st.get_option("server.address")
        if address and not is_loopback(address):
            st.error("This page listens beyond this machine without a password, so it shows nothing. "
                     "Start it with `faceqa app --expose --password ...`.")
            st.stop()
        return
    if st.session_state.get(_ADMITTED):
        return
    with st.form("faceqa-gate"):
        typed = st.text_input("Password", type="password")
        opened = st.form_submit_button("Open")
    if opened:
        if hmac.compare_digest(typed.encode(), password.encode()):
            st.session_state[_ADMITTED] = True
            st.rerun()
        st.error("Wrong password.")
    st.stop()
