"""The baseline: a Kit app written the way Authlib's documentation tells a typical app to write it.

* One row per connection in a token store that every process of the app shares (here a SQLite
  file; a PostgreSQL table behaves the same way: the race is not in the database).
* Before each API call the app reads the connection's token from the store and hands it to an
  ``OAuth2Session`` configured with ``token_endpoint`` and ``update_token``. Authlib then
  refreshes by itself when the token is expired (``leeway`` seconds early, default 60) and calls
  ``update_token``, which saves the new pair over the row that held the old refresh token — the
  callback from Authlib's "Auto Update Token" documentation.
* There is no lock around the refresh, neither between threads nor between processes: Authlib
  has none and its documentation shows none, and that is what typical apps ship.

Nothing here is tuned to make the baseline look bad: the store uses WAL and a generous busy
timeout so that SQLite never fails a write, and the HTTP client is plain ``requests``.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

from authlib.integrations.requests_client import OAuth2Session

SCHEMA = """
CREATE TABLE IF NOT EXISTS kit_tokens (
    connection_id INTEGER PRIMARY KEY,
    account_name  TEXT NOT NULL,
    token_type    TEXT NOT NULL,
    access_token  TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    expires_at    INTEGER NOT NULL
)
"""


class TokenStore:
    """The shared token store: a SQLite file, one connection per thread (sqlite3's rule)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._local.db = db
        return db

    def insert(self, connection_id: int, account_name: str, token: dict) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO kit_tokens VALUES (?, ?, ?, ?, ?, ?)",
            (
                connection_id,
                account_name,
                token["token_type"],
                token["access_token"],
                token["refresh_token"],
                int(token["expires_at"]),
            ),
        )

    def load(self, connection_id: int) -> dict:
        row = self._db().execute(
            "SELECT token_type, access_token, refresh_token, expires_at"
            " FROM kit_tokens WHERE connection_id = ?",
            (connection_id,),
        ).fetchone()
        if row is None:
            raise KeyError(connection_id)
        return {
            "token_type": row[0],
            "access_token": row[1],
            "refresh_token": row[2],
            "expires_at": row[3],
        }

    def update_by_refresh_token(self, connection_id: int, token: dict, refresh_token: str) -> int:
        """Authlib's documented ``update_token``: find the row by the refresh token just used."""
        cursor = self._db().execute(
            "UPDATE kit_tokens SET token_type = ?, access_token = ?, refresh_token = ?,"
            " expires_at = ? WHERE connection_id = ? AND refresh_token = ?",
            (
                token["token_type"],
                token["access_token"],
                token["refresh_token"],
                int(token["expires_at"]),
                connection_id,
                refresh_token,
            ),
        )
        return cursor.rowcount

    def connection_ids(self) -> list[int]:
        rows = self._db().execute("SELECT connection_id FROM kit_tokens ORDER BY connection_id")
        return [row[0] for row in rows]


@dataclass(frozen=True)
class KitSettings:
    base_url: str
    client_id: str
    client_secret: str
    redirect_uri: str

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/v4/oauth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/v4/oauth/token"


def kit_session(settings: KitSettings, store: TokenStore, connection_id: int | None) -> OAuth2Session:
    """An Authlib session for one connection, with auto-refresh wired to the shared store."""

    def update_token(token, refresh_token=None, access_token=None):
        if refresh_token and connection_id is not None:
            store.update_by_refresh_token(connection_id, token, refresh_token)

    token = store.load(connection_id) if connection_id is not None else None
    return OAuth2Session(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        # Kit's documentation sends the client credentials in the body.
        token_endpoint_auth_method="client_secret_post",
        token_endpoint=settings.token_url,
        redirect_uri=settings.redirect_uri,
        scope="public",
        token=token,
        update_token=update_token,
        default_timeout=30,
    )


def get_account(settings: KitSettings, store: TokenStore, connection_id: int):
    """What an app does to call Kit: load the token, let Authlib refresh it if needed, call."""
    with kit_session(settings, store, connection_id) as session:
        return session.get(f"{settings.base_url}/v4/account")
