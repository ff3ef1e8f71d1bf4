//! The store's decoder of sealed secrets: what `SeaOrmStore` does with the key id, nonce and
//! ciphertext columns of a row when it reads a connection (`get`) or redeems a pending install
//! (`consume_pending`), on a real SQLite file.
//!
//! Each input patches those columns of a sealed row (replace, NULL, flip a byte, truncate,
//! append) and reads it back. Properties: arbitrary bytes give a typed `StoreError`
//! (`Corrupt`, `Integrity` or `UnknownKey`), never a panic and never a wrong secret; the row
//! reads back exactly as written if and only if every patched column is unchanged; no error
//! message carries the plaintext.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use kit_oauth::core::{
    AccessToken, Connection, ConnectionId, ConnectionRecord, ConnectionStore as _,
    ConnectionStoreExt as _, Installed, KitAccount, KitAccountId, KitRedirect, PendingRecord,
    PendingTake, PkceVerifier, RefreshToken, Sha256Hash, StoreError, TenantName, Timestamp,
    TokenSet, Unauthorized,
};
use kit_oauth::store::{KeyRing, SeaOrmStore};
use libfuzzer_sys::fuzz_target;
use sea_orm::{ConnectionTrait as _, DbBackend, Statement, Value};

const ACCESS: &str = "at-fuzz-0123456789-access";
const REFRESH: &str = "rt-fuzz-0123456789-refresh";
const VERIFIER: &str = "verifier-fuzz-0123456789-abcdefghijklmnopqrstuvwxyz";
const NOW: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

/// A change to one BLOB column.
#[derive(Debug, Arbitrary)]
enum Patch {
    Keep,
    Null,
    Replace(Vec<u8>),
    Flip { index: u16, mask: u8 },
    Truncate(u16),
    Append(Vec<u8>),
}

impl Patch {
    /// The new value, or `None` for SQL NULL.
    fn apply(&self, original: &[u8]) -> Option<Vec<u8>> {
        let mut bytes = original.to_vec();
        match self {
            Self::Keep => {}
            Self::Null => return None,
            Self::Replace(new) => bytes.clone_from(new),
            Self::Flip { index, mask } => {
                if !bytes.is_empty() {
                    let i = usize::from(*index) % bytes.len();
                    bytes[i] ^= mask;
                }
            }
            Self::Truncate(len) => bytes.truncate(usize::from(*len)),
            Self::Append(tail) => bytes.extend_from_slice(tail),
        }
        Some(bytes)
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// A pending install's verifier instead of a connection's tokens.
    pending: bool,
    /// `None`: keep; `Some(None)`: NULL; else this key id.
    key_id: Option<Option<String>>,
    nonce: Patch,
    ciphertext: Patch,
    refresh_nonce: Patch,
    refresh_ciphertext: Patch,
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: SeaOrmStore,
    record: ConnectionRecord,
    /// key_id, access nonce, access ct, refresh nonce, refresh ct, as sealed.
    sealed: (String, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>),
    pending: PendingRecord,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("fuzz.db").display());
        // Two keys: the current one seals, the old one is still looked up by id.
        let keys = KeyRing::from_env_value(
            "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,\
             k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
        )
        .expect("a key ring");
        let store = runtime
            .block_on(SeaOrmStore::connect(&url, keys))
            .expect("a SQLite store");
        // Through the flow's import transition, as every stored connection is.
        let connection = Connection::<Unauthorized>::new(Some(
            TenantName::parse("acme").expect("a tenant"),
        ))
        .import(
            ConnectionId::parse("fuzz-connection-1").expect("an id"),
            KitAccount {
                id: KitAccountId::parse("1234").expect("an account"),
                name: "Fuzz".into(),
                primary_email: None,
            },
            TokenSet::from_parts(
                AccessToken::new(ACCESS),
                RefreshToken::new(REFRESH),
                Some("public".into()),
                NOW,
                NOW.saturating_add(std::time::Duration::from_secs(7200)),
            ),
        );
        let next_refresh_at = NOW.saturating_add(std::time::Duration::from_secs(6000));
        let record = runtime
            .block_on(store.upsert_installed(&Installed::new(&connection, next_refresh_at, NOW)))
            .expect("the row is written");
        let row = runtime
            .block_on(
                store
                    .connection()
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Sqlite,
                        "SELECT key_id, access_token_nonce, access_token_ct, refresh_token_nonce, \
                 refresh_token_ct FROM connections WHERE id = $1",
                        [record.id.as_str().into()],
                    )),
            )
            .expect("the row is read")
            .expect("the row exists");
        let get = |column: &str| -> Vec<u8> { row.try_get("", column).expect("a BLOB") };
        let sealed = (
            row.try_get("", "key_id").expect("a key id"),
            get("access_token_nonce"),
            get("access_token_ct"),
            get("refresh_token_nonce"),
            get("refresh_token_ct"),
        );
        let pending = PendingRecord {
            state_hash: Sha256Hash::of(b"fuzz-state"),
            verifier: PkceVerifier::parse(VERIFIER).expect("a verifier"),
            kit_redirect: KitRedirect::try_from(
                "https://app.kit.com/apps/1?success=true".to_owned(),
            )
            .expect("a redirect"),
            tenant: None,
            reinstall_of: None,
            browser_binding: Sha256Hash::of(b"fuzz-browser"),
            started_at: NOW,
            expires_at: NOW.saturating_add(std::time::Duration::from_secs(600)),
        };
        Fixture {
            runtime,
            store,
            record,
            sealed,
            pending,
            _dir: dir,
        }
    })
}

fn blob(value: Option<Vec<u8>>) -> Value {
    value.into()
}

fn text(value: Option<String>) -> Value {
    value.into()
}

/// The outcome must be typed, and must never show a secret.
fn check_error(error: &StoreError) {
    assert!(
        matches!(
            error,
            StoreError::Corrupt(_) | StoreError::Integrity { .. } | StoreError::UnknownKey { .. }
        ),
        "untyped outcome for a tampered row: {error:?}"
    );
    let text = format!("{error} {error:?}");
    for secret in [ACCESS, REFRESH, VERIFIER] {
        assert!(!text.contains(secret), "an error shows a secret: {text}");
    }
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let db = f.store.connection();
    let exec = |sql: &str, values: Vec<Value>| {
        f.runtime
            .block_on(db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            )))
    };
    let key_id = match &input.key_id {
        None => Some(f.sealed.0.clone()),
        Some(v) => v.clone(),
    };
    if input.pending {
        f.runtime
            .block_on(f.store.insert_pending(&f.pending))
            .expect("a pending install is written");
        let hash = f.pending.state_hash.to_string();
        let row = f
            .runtime
            .block_on(db.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT verifier_nonce, verifier_ct FROM pending_authorizations \
                 WHERE state_hash = $1",
                [hash.clone().into()],
            )))
            .expect("read")
            .expect("the pending row exists");
        let nonce: Vec<u8> = row.try_get("", "verifier_nonce").expect("a BLOB");
        let ct: Vec<u8> = row.try_get("", "verifier_ct").expect("a BLOB");
        let (new_nonce, new_ct) = (input.nonce.apply(&nonce), input.ciphertext.apply(&ct));
        let unchanged = key_id.as_deref() == Some(f.sealed.0.as_str())
            && new_nonce.as_deref() == Some(nonce.as_slice())
            && new_ct.as_deref() == Some(ct.as_slice());
        let written = exec(
            "UPDATE pending_authorizations SET key_id = $1, verifier_nonce = $2, \
             verifier_ct = $3 WHERE state_hash = $4",
            vec![text(key_id), blob(new_nonce), blob(new_ct), hash.into()],
        );
        if written.is_err() {
            // NOT NULL columns: the database refused the patch; clean up and stop here.
            let _ = f.runtime.block_on(
                f.store
                    .consume_pending(&f.pending.state_hash, Some(&f.pending.browser_binding)),
            );
            return;
        }
        match f
            .runtime
            .block_on(
                f.store
                    .consume_pending(&f.pending.state_hash, Some(&f.pending.browser_binding)),
            )
            .map(PendingTake::taken)
        {
            Ok(Some(read)) => {
                assert!(unchanged, "a tampered verifier was accepted: {input:?}");
                assert_eq!(read.record(), &f.pending);
            }
            Ok(None) => panic!("the pending install vanished"),
            Err(error) => {
                assert!(!unchanged, "an untouched pending install failed: {error}");
                check_error(&error);
            }
        }
        return;
    }

    let (_, an, ac, rn, rc) = &f.sealed;
    let patched = [
        input.nonce.apply(an),
        input.ciphertext.apply(ac),
        input.refresh_nonce.apply(rn),
        input.refresh_ciphertext.apply(rc),
    ];
    let unchanged = key_id.as_deref() == Some(f.sealed.0.as_str())
        && patched
            .iter()
            .zip([an, ac, rn, rc])
            .all(|(new, old)| new.as_deref() == Some(old.as_slice()));
    let update = "UPDATE connections SET key_id = $1, access_token_nonce = $2, \
                  access_token_ct = $3, refresh_token_nonce = $4, refresh_token_ct = $5 \
                  WHERE id = $6";
    let [p0, p1, p2, p3] = patched;
    exec(
        update,
        vec![
            text(key_id),
            blob(p0),
            blob(p1),
            blob(p2),
            blob(p3),
            f.record.id.as_str().into(),
        ],
    )
    .expect("the connection row is patched");
    let outcome = f.runtime.block_on(f.store.get(&f.record.id));
    exec(
        update,
        vec![
            text(Some(f.sealed.0.clone())),
            blob(Some(an.clone())),
            blob(Some(ac.clone())),
            blob(Some(rn.clone())),
            blob(Some(rc.clone())),
            f.record.id.as_str().into(),
        ],
    )
    .expect("the connection row is restored");
    match outcome {
        Ok(Some(read)) => {
            assert!(unchanged, "a tampered connection was accepted: {input:?}");
            assert_eq!(read, f.record);
        }
        Ok(None) => panic!("the connection vanished"),
        Err(error) => {
            assert!(!unchanged, "an untouched connection failed: {error}");
            check_error(&error);
        }
    }
});
