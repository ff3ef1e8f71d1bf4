//! Fault injection: the next N responses of an endpoint get a status, latency, a dropped
//! connection, malformed JSON, or (token endpoint) "process, then drop the response".

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Which endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultEndpoint {
    /// `GET`/`POST` `/v4/oauth/authorize` and `/oauth/authorize`.
    Authorize,
    /// `POST /v4/oauth/token` and `/oauth/token`.
    Token,
    /// `POST /v4/oauth/revoke` and `/oauth/revoke`.
    Revoke,
    /// `GET /v4/account`.
    Account,
    /// Any other `/v4/*` API path.
    Api,
    /// Every endpoint above.
    Any,
}

impl FaultEndpoint {
    fn matches(self, target: FaultEndpoint) -> bool {
        self == FaultEndpoint::Any || self == target
    }
}

/// What happens to a faulted response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status (the request is not processed). `body` defaults to empty; a
    /// `retry_after` (seconds) adds a `Retry-After` header.
    Status {
        /// HTTP status code, 100–599.
        status: u16,
        /// Response body; sent as `application/json` when it parses as JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// Value of a `Retry-After` header, in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// Process the request normally, then hold the response for this many milliseconds.
    Latency {
        /// Added delay in milliseconds (at most 600000).
        ms: u64,
    },
    /// Close the connection without answering (the request is not processed).
    Drop,
    /// Answer 200 `application/json` with a truncated JSON body (not processed).
    MalformedJson,
    /// Token endpoint only: process the request (rotating tokens), then close the connection
    /// instead of sending the response: the client never sees the new tokens.
    RotateThenDrop,
}

/// A fault as posted to `POST /_sandbox/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The endpoint it applies to.
    pub endpoint: FaultEndpoint,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many of the next responses it affects (default 1).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault for the next response of `endpoint`.
    pub fn new(endpoint: FaultEndpoint, kind: FaultKind) -> Self {
        Self {
            endpoint,
            kind,
            count: 1,
        }
    }

    /// The same fault for the next `count` responses.
    #[must_use]
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// Why this fault cannot be installed, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.count == 0 {
            return Err("count must be at least 1".into());
        }
        match &self.kind {
            FaultKind::Status { status, .. } if !(100..=599).contains(status) => {
                Err(format!("status {status} is not between 100 and 599"))
            }
            FaultKind::Latency { ms } if *ms > 600_000 => {
                Err("latency ms must be at most 600000".into())
            }
            FaultKind::RotateThenDrop if self.endpoint != FaultEndpoint::Token => {
                Err("rotate_then_drop applies to the token endpoint only".into())
            }
            _ => Ok(()),
        }
    }
}

/// An installed fault and how many responses it still affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// The fault as installed.
    #[serde(flatten)]
    pub fault: Fault,
    /// Responses it will still affect.
    pub remaining: u32,
}

/// Installed faults, consumed first-in first-out.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    queue: VecDeque<ActiveFault>,
}

impl Faults {
    pub(crate) fn push(&mut self, fault: Fault) {
        if self.queue.len() >= 1024 {
            self.queue.pop_front();
        }
        let remaining = fault.count;
        self.queue.push_back(ActiveFault { fault, remaining });
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }

    pub(crate) fn list(&self) -> Vec<ActiveFault> {
        self.queue.iter().cloned().collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The fault for the next response of `target`, if one is installed.
    pub(crate) fn take(&mut self, target: FaultEndpoint) -> Option<FaultKind> {
        let i = self
            .queue
            .iter()
            .position(|f| f.fault.endpoint.matches(target))?;
        let f = self.queue.get_mut(i)?;
        f.remaining = f.remaining.saturating_sub(1);
        let kind = f.fault.kind.clone();
        if f.remaining == 0 {
            self.queue.remove(i);
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_the_documented_json() {
        let f: Fault =
            serde_json::from_str(r#"{"endpoint":"token","kind":"status","status":503,"count":2}"#)
                .unwrap();
        assert_eq!(
            f,
            Fault::new(
                FaultEndpoint::Token,
                FaultKind::Status {
                    status: 503,
                    body: None,
                    retry_after: None
                }
            )
            .times(2)
        );
        let f: Fault = serde_json::from_str(r#"{"endpoint":"any","kind":"drop"}"#).unwrap();
        assert_eq!(f.count, 1);
        let f: Fault =
            serde_json::from_str(r#"{"endpoint":"account","kind":"rotate_then_drop"}"#).unwrap();
        assert!(f.validate().is_err());
    }

    #[test]
    fn faults_are_consumed_in_order_and_counted_down() {
        let mut q = Faults::default();
        q.push(Fault::new(FaultEndpoint::Token, FaultKind::Drop).times(2));
        q.push(Fault::new(FaultEndpoint::Any, FaultKind::MalformedJson));
        assert_eq!(
            q.take(FaultEndpoint::Account),
            Some(FaultKind::MalformedJson)
        );
        assert_eq!(q.take(FaultEndpoint::Account), None);
        assert_eq!(q.take(FaultEndpoint::Token), Some(FaultKind::Drop));
        assert_eq!(q.take(FaultEndpoint::Token), Some(FaultKind::Drop));
        assert_eq!(q.take(FaultEndpoint::Token), None);
        assert!(q.is_empty());
    }
}
