//! Property suite: random sequences of flow events against a small reference model.
//!
//! Invariants checked after every step:
//! - the typed connection is in the state the model predicts;
//! - every state change is one of docs/design.md's legal transitions;
//! - an access token handed out is never past its expiry at the clock's instant;
//! - a spent refresh token is never presented again (the fake server counts it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kit_oauth_core::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Begin,
    CallbackRight,
    CallbackWrong,
    CallbackReplay,
    CallbackDenied,
    Advance(u64),
    GetToken,
    RefreshOk(u64),
    RefreshTransient,
    RefreshInvalidGrant,
    Revoke,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Begin),
        3 => Just(Step::CallbackRight),
        1 => Just(Step::CallbackWrong),
        1 => Just(Step::CallbackReplay),
        1 => Just(Step::CallbackDenied),
        4 => (0u64..8_000).prop_map(Step::Advance),
        4 => Just(Step::GetToken),
        3 => (30u64..200_000).prop_map(Step::RefreshOk),
        1 => Just(Step::RefreshTransient),
        1 => Just(Step::RefreshInvalidGrant),
        1 => Just(Step::Revoke),
    ]
}

/// The reference model: what state the connection should be in, computed without the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Unauthorized,
    Pending { deadline_ms: i64 },
    Authorized { due_ms: i64 },
    Expired,
}

impl Model {
    fn name(self) -> StateName {
        match self {
            Self::Unauthorized => StateName::Unauthorized,
            Self::Pending { .. } => StateName::Pending,
            Self::Authorized { .. } => StateName::Authorized,
            Self::Expired => StateName::Expired,
        }
    }
}

/// An independent statement of the margin rule, in milliseconds.
fn model_due_ms(issued_ms: i64, lifetime_s: u64) -> i64 {
    let lifetime_ms = i64::try_from(lifetime_s).unwrap() * 1000;
    let margin = (lifetime_ms / 10)
        .clamp(60_000, 900_000)
        .min(lifetime_ms / 2);
    issued_ms + lifetime_ms - margin
}

/// A fake authorization server that remembers every token it issued and spent.
#[derive(Default)]
struct FakeKit {
    issued: u64,
    /// access token -> expiry (ms)
    access_expiry: HashMap<String, i64>,
    live_refresh: HashSet<String>,
    spent_refresh: HashSet<String>,
    reused_spent: u32,
}

impl FakeKit {
    fn issue(&mut self, clock: &ManualClock, lifetime: u64) -> TokenSet {
        self.issued += 1;
        let access = format!("at-{}", self.issued);
        let refresh = format!("rt-{}", self.issued);
        let now = clock.now();
        let expiry = now.unix_millis() + i64::try_from(lifetime).unwrap() * 1000;
        self.access_expiry.insert(access.clone(), expiry);
        self.live_refresh.insert(refresh.clone());
        TokenSet::from_response(
            TokenResponse {
                access_token: AccessToken::new(access),
                refresh_token: Some(RefreshToken::new(refresh)),
                expires_in: Some(lifetime),
                created_at: None,
                scope: None,
            },
            now,
            None,
        )
        .unwrap()
    }

    /// Spends a refresh token; counts any reuse of a spent one.
    fn spend(&mut self, refresh: &RefreshToken) {
        let token = refresh.expose_secret().to_owned();
        if self.spent_refresh.contains(&token) {
            self.reused_spent += 1;
        }
        self.live_refresh.remove(&token);
        self.spent_refresh.insert(token);
    }
}

/// The connection in whichever state it is: this suite's own erasure (the crate offers none —
/// a stored connection is typed again only through the store's `Restore`).
#[derive(Debug)]
enum AnyConnection {
    Unauthorized(Connection<Unauthorized>),
    Pending(Connection<Pending>),
    Authorized(Connection<Authorized>),
    Expired(Connection<Expired>),
}

impl AnyConnection {
    fn state_name(&self) -> StateName {
        match self {
            Self::Unauthorized(_) => StateName::Unauthorized,
            Self::Pending(_) => StateName::Pending,
            Self::Authorized(_) => StateName::Authorized,
            Self::Expired(_) => StateName::Expired,
        }
    }
}

macro_rules! erase {
    ($($state:ident),*) => {$(
        impl From<Connection<$state>> for AnyConnection {
            fn from(connection: Connection<$state>) -> Self {
                Self::$state(connection)
            }
        }
    )*};
}

erase!(Unauthorized, Pending, Authorized, Expired);

struct World {
    clock: ManualClock,
    kit: FakeKit,
    connection: AnyConnection,
    model: Model,
    next_state: u64,
    consumed_states: Vec<String>,
    handed_out: u32,
}

fn legal(from: StateName, to: StateName) -> bool {
    use StateName::{Authorized, Expired, Pending, Unauthorized};
    if from == to {
        return true;
    }
    match from {
        Unauthorized => to == Pending,
        Pending => matches!(to, Unauthorized | Authorized),
        Authorized => matches!(to, Expired | Unauthorized),
        Expired => matches!(to, Authorized | Unauthorized),
    }
}

impl World {
    fn new() -> Self {
        Self {
            clock: ManualClock::new(Timestamp::from_unix_seconds(1_700_000_000)),
            kit: FakeKit::default(),
            connection: Connection::<Unauthorized>::new(None).into(),
            model: Model::Unauthorized,
            next_state: 0,
            consumed_states: Vec::new(),
            handed_out: 0,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().unix_millis()
    }

    fn install_start(&mut self) -> InstallStart {
        self.next_state += 1;
        InstallStart {
            state: CsrfState::new(format!("state-{}", self.next_state)),
            verifier: PkceVerifier::parse(&"v".repeat(43)).unwrap(),
            kit_redirect: KitRedirect::parse(
                "https://app.kit.com/apps/1",
                &RedirectAllowlist::default(),
            )
            .unwrap(),
        }
    }

    fn apply(&mut self, step: &Step) {
        let connection = std::mem::replace(
            &mut self.connection,
            Connection::<Unauthorized>::new(None).into(),
        );
        self.connection = match (connection, step) {
            (AnyConnection::Unauthorized(c), Step::Begin) => {
                let start = self.install_start();
                let pending = c.begin(start, &self.clock);
                self.model = Model::Pending {
                    deadline_ms: self.now_ms() + 600_000,
                };
                pending.into()
            }
            (
                AnyConnection::Pending(p),
                Step::CallbackRight
                | Step::CallbackWrong
                | Step::CallbackReplay
                | Step::CallbackDenied,
            ) => self.callback(p, step),
            (any, Step::Advance(secs)) => {
                self.clock.advance(Duration::from_secs(*secs));
                any
            }
            (AnyConnection::Authorized(c), Step::GetToken) => self.get_token(c),
            (AnyConnection::Expired(e), Step::RefreshOk(lifetime)) => {
                self.kit.spend(e.refresh_token());
                let tokens = self.kit.issue(&self.clock, *lifetime);
                self.model = Model::Authorized {
                    due_ms: model_due_ms(self.now_ms(), *lifetime),
                };
                e.refreshed(tokens).into_connection().into()
            }
            // A transient failure never reached the server: nothing is spent, nothing changes.
            (AnyConnection::Expired(e), Step::RefreshTransient) => e.into(),
            (AnyConnection::Expired(e), Step::RefreshInvalidGrant) => {
                self.kit.spend(e.refresh_token());
                self.model = Model::Unauthorized;
                e.reauth_required("invalid_grant".into()).into()
            }
            (AnyConnection::Authorized(c), Step::Revoke) => {
                self.model = Model::Unauthorized;
                c.revoke().into()
            }
            (AnyConnection::Expired(e), Step::Revoke) => {
                self.model = Model::Unauthorized;
                e.revoke().into()
            }
            // Every other (state, event) pair is a transition the types do not offer.
            (any, _) => any,
        };
    }

    fn callback(&mut self, pending: Connection<Pending>, step: &Step) -> AnyConnection {
        let own = pending.csrf_state().expose_secret().to_owned();
        let query = match step {
            Step::CallbackRight => format!("code=c&state={own}"),
            Step::CallbackDenied => format!("error=access_denied&state={own}"),
            Step::CallbackReplay => match self.consumed_states.last() {
                Some(old) => format!("code=c&state={old}"),
                None => "code=c&state=never-issued".to_owned(),
            },
            _ => "code=c&state=forged".to_owned(),
        };
        self.consumed_states.push(own);
        let Model::Pending { deadline_ms } = self.model else {
            panic!("model out of step: {:?}", self.model)
        };
        let callback = Callback::from_query(&query).unwrap();
        match pending.callback(callback, &self.clock) {
            Ok(grant) => {
                assert!(matches!(step, Step::CallbackRight));
                assert!(self.now_ms() < deadline_ms, "accepted after the deadline");
                let tokens = self.kit.issue(&self.clock, 172_800);
                self.model = Model::Authorized {
                    due_ms: model_due_ms(self.now_ms(), 172_800),
                };
                let account = KitAccount {
                    id: KitAccountId::from(1),
                    name: "A".into(),
                    primary_email: None,
                };
                grant
                    .authorize(ConnectionId::parse("c1").unwrap(), account, tokens)
                    .into()
            }
            Err(rejected) => {
                let expected_ok =
                    matches!(step, Step::CallbackRight) && self.now_ms() < deadline_ms;
                assert!(
                    !expected_ok,
                    "refused a valid callback: {:?}",
                    rejected.error
                );
                self.model = Model::Unauthorized;
                rejected.connection.into()
            }
        }
    }

    fn get_token(&mut self, connection: Connection<Authorized>) -> AnyConnection {
        let Model::Authorized { due_ms } = self.model else {
            panic!("model out of step: {:?}", self.model)
        };
        match connection.observe(&self.clock) {
            Freshness::Fresh(c) => {
                assert!(self.now_ms() < due_ms, "model says the token is due");
                let token = c.access_token(&self.clock).unwrap();
                let expiry = self.kit.access_expiry[token.expose_secret()];
                assert!(self.now_ms() < expiry, "handed out a token past its expiry");
                self.handed_out += 1;
                c.into()
            }
            Freshness::Due(e) => {
                assert!(self.now_ms() >= due_ms, "model says the token is fresh");
                self.model = Model::Expired;
                e.into()
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn flow_matches_the_reference_model(steps in proptest::collection::vec(step(), 1..80)) {
        let mut world = World::new();
        for step in &steps {
            let before = world.connection.state_name();
            world.apply(step);
            let after = world.connection.state_name();
            prop_assert!(legal(before, after), "illegal transition {before} -> {after} on {step:?}");
            prop_assert_eq!(after, world.model.name(), "after {:?}", step);
        }
        prop_assert_eq!(world.kit.reused_spent, 0, "a spent refresh token was sent again");
    }
}

/// The suite above must be able to fail: a world that skips the rotation reuses a token.
#[test]
fn the_reuse_counter_counts() {
    let mut kit = FakeKit::default();
    let token = RefreshToken::new("rt");
    kit.spend(&token);
    kit.spend(&token);
    assert_eq!(kit.reused_spent, 1);
}

/// Every state is reachable through legal steps alone.
#[test]
fn every_state_is_reachable() {
    let mut world = World::new();
    let mut seen = HashSet::new();
    for step in [
        Step::Begin,
        Step::CallbackRight,
        Step::GetToken,
        Step::Advance(172_800),
        Step::GetToken,
        Step::RefreshOk(7200),
        Step::Revoke,
    ] {
        world.apply(&step);
        seen.insert(world.connection.state_name());
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(world.handed_out, 1);
}
