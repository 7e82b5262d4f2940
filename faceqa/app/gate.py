"""The chat page's door: with a password set, nothing of the page is shown until it is typed.

`faceqa app --password` (or FACEQA_APP_PASSWORD) hands the password to Streamlit's
process in the environment variable `PASSWORD_ENV`, never on the command line where
`ps` would show it. The page calls `require_password()` first thing: without a password
configured it returns at once (loopback use), unless the server listens off loopback,
which it then refuses to serve at all; with one, it asks for it and stops the script
until this browser session has given it (compared in constant time). A session that
got in stays in until it ends.

Guessing is slowed for the whole server, not per session (a new browser session costs an
attacker nothing): after `WRONG_LIMIT` wrong passwords within `WINDOW_SECONDS`, no password
is checked until the oldest of them is a window old. The price is that a guesser can keep
everyone out for that long; the password itself is never at risk.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from faceqa.app.config import is_loopback

PASSWORD_ENV = "FACEQA_APP_PASSWORD"
WRONG_LIMIT = 5
WINDOW_SECONDS = 60.0
_ADMITTED = "faceqa_gate_admitted"


class WrongPasswords:
    """The recent wrong passwords of this server process, for every session at once."""

    def __init__(self, limit: int = WRONG_LIMIT, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()  # Streamlit runs each session's script on its own thread

    def _forget_old(self) -> None:
        while self._times and self.clock() - self._times[0] >= self.window:
            self._times.popleft()

    def may_try(self) -> bool:
        with self._lock:
            self._forget_old()
            return len(self._times) < self.limit

    def record(self) -> None:
        with self._lock:
            self._times.append(self.clock())


WRONG = WrongPasswords()


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
        if not WRONG.may_try():
            st.error("Too many wrong passwords were typed on this server; try again in a minute.")
            st.stop()
        if hmac.compare_digest(typed.encode(), password.encode()):
            st.session_state[_ADMITTED] = True
            st.rerun()
        WRONG.record()
        st.error("Wrong password.")
    st.stop()
