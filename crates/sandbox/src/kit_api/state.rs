//! Per-account resources in memory. Every Kit account the sandbox has issued a token for gets
//! its own empty lists plus a few seeded forms, sequences, segments and email templates
//! (Kit's API cannot create those, so an app could not otherwise test against them).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::support::{Fail, iso};

#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) id: u64,
    pub(crate) email: String,
    pub(crate) first_name: Option<String>,
    pub(crate) state: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) canceled_at: Option<i64>,
    /// Custom field values by field id, so renaming a field keeps them.
    pub(crate) fields: BTreeMap<u64, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) created_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) id: u64,
    pub(crate) label: String,
    pub(crate) key: String,
    pub(crate) name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Form {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) created_at: i64,
    pub(crate) kind: &'static str,
    pub(crate) status: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct Sequence {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) created_at: i64,
    pub(crate) active: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Broadcast {
    pub(crate) id: u64,
    pub(crate) created_at: i64,
    pub(crate) send_at: Option<i64>,
    pub(crate) published_at: Option<i64>,
    /// The writable fields as last sent (subject, content, …).
    pub(crate) fields: Map<String, Value>,
    pub(crate) email_template: Option<(u64, String)>,
    pub(crate) recipients: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    pub(crate) id: u64,
    /// The event name without its `subscriber.` / `purchase.` / `custom_field.` prefix.
    pub(crate) name: String,
    /// The event's parameter, e.g. `("tag_id", 44)`.
    pub(crate) param: Option<(String, Value)>,
    pub(crate) target_url: String,
}

/// One Kit account's resources.
#[derive(Debug)]
pub(crate) struct AccountData {
    pub(crate) account_id: u64,
    next_id: u64,
    /// [`crate::SandboxConfig::max_records_per_account`].
    max_records: usize,
    pub(crate) subscribers: BTreeMap<u64, Subscriber>,
    pub(crate) by_email: HashMap<String, u64>,
    pub(crate) tags: BTreeMap<u64, Tag>,
    /// (tag id, subscriber id) → tagged at.
    pub(crate) taggings: BTreeMap<(u64, u64), i64>,
    pub(crate) fields: BTreeMap<u64, Field>,
    pub(crate) forms: BTreeMap<u64, Form>,
    /// (form id, subscriber id) → (added at, referrer).
    pub(crate) form_subs: BTreeMap<(u64, u64), (i64, Option<String>)>,
    pub(crate) sequences: BTreeMap<u64, Sequence>,
    /// (sequence id, subscriber id) → added at.
    pub(crate) sequence_subs: BTreeMap<(u64, u64), i64>,
    pub(crate) broadcasts: BTreeMap<u64, Broadcast>,
    pub(crate) webhooks: BTreeMap<u64, Webhook>,
    pub(crate) purchases: BTreeMap<u64, Value>,
    pub(crate) segments: BTreeMap<u64, (String, i64)>,
    pub(crate) templates: BTreeMap<u64, (String, bool, &'static str)>,
    /// `PUT /account/colors`: the account's brand colors, in the order given.
    pub(crate) colors: Vec<String>,
}

impl AccountData {
    pub(crate) fn new(account_id: u64, now_ms: i64, max_records: usize) -> Self {
        let mut d = Self {
            account_id,
            next_id: 1,
            max_records,
            subscribers: BTreeMap::new(),
            by_email: HashMap::new(),
            tags: BTreeMap::new(),
            taggings: BTreeMap::new(),
            fields: BTreeMap::new(),
            forms: BTreeMap::new(),
            form_subs: BTreeMap::new(),
            sequences: BTreeMap::new(),
            sequence_subs: BTreeMap::new(),
            broadcasts: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            purchases: BTreeMap::new(),
            segments: BTreeMap::new(),
            templates: BTreeMap::new(),
            colors: Vec::new(),
        };
        for (name, kind, status) in [
            ("Newsletter sign-up", "embed", "active"),
            ("Landing page", "hosted", "active"),
            ("Old pop-up", "embed", "archived"),
        ] {
            let id = d.next_id();
            d.forms.insert(
                id,
                Form {
                    id,
                    name: name.to_owned(),
                    created_at: now_ms,
                    kind,
                    status,
                },
            );
        }
        for (name, active) in [("Welcome series", true), ("Paused course", false)] {
            let id = d.next_id();
            d.sequences.insert(
                id,
                Sequence {
                    id,
                    name: name.to_owned(),
                    created_at: now_ms,
                    active,
                },
            );
        }
        for name in ["Engaged readers", "Customers"] {
            let id = d.next_id();
            d.segments.insert(id, (name.to_owned(), now_ms));
        }
        for (name, default, category) in [("Classic", true, "Classic"), ("Story", false, "Story")] {
            let id = d.next_id();
            d.templates.insert(id, (name.to_owned(), default, category));
        }
        d
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Records the account holds that the API created (seeds excluded): what
    /// `max_records` bounds.
    pub(crate) fn records(&self) -> usize {
        self.subscribers.len()
            + self.tags.len()
            + self.taggings.len()
            + self.fields.len()
            + self.form_subs.len()
            + self.sequence_subs.len()
            + self.broadcasts.len()
            + self.webhooks.len()
            + self.purchases.len()
    }

    /// Refuses one more record once the account holds `max_records` (422, logged).
    pub(crate) fn room(&self) -> Result<(), Fail> {
        if self.records() < self.max_records {
            return Ok(());
        }
        // The sandbox logs to stderr (it has no logger); once per refused call.
        eprintln!(
            "kit-sandbox: account {} holds its limit of {} records; refusing to create more",
            self.account_id, self.max_records
        );
        Err(Fail::invalid(format!(
            "kit-sandbox: this account holds its limit of {} records (--max-records)",
            self.max_records
        )))
    }

    /// The id of a new record, if the account has room for it.
    pub(crate) fn new_id(&mut self) -> Result<u64, Fail> {
        self.room()?;
        Ok(self.next_id())
    }

    pub(crate) fn subscriber_by_email(&self, email: &str) -> Option<u64> {
        self.by_email
            .get(&email.trim().to_ascii_lowercase())
            .copied()
    }

    /// Kit's subscriber object (`fields` lists every custom field, `null` when unset).
    pub(crate) fn subscriber_json(&self, s: &Subscriber) -> Value {
        let mut v = json!({
            "id": s.id,
            "first_name": s.first_name,
            "email_address": s.email,
            "state": s.state,
            "created_at": iso(s.created_at),
        });
        let fields: Map<String, Value> = self
            .fields
            .values()
            .map(|f| (f.key.clone(), json!(s.fields.get(&f.id))))
            .collect();
        v["fields"] = Value::Object(fields);
        v
    }

    pub(crate) fn tag_json(&self, t: &Tag) -> Value {
        json!({"id": t.id, "name": t.name, "created_at": iso(t.created_at)})
    }

    pub(crate) fn field_json(f: &Field) -> Value {
        json!({"id": f.id, "name": f.name, "key": f.key, "label": f.label})
    }

    pub(crate) fn webhook_json(&self, w: &Webhook) -> Value {
        let mut event = json!({"name": w.name});
        if let Some((k, v)) = &w.param {
            event[k] = v.clone();
        }
        json!({"id": w.id, "account_id": self.account_id, "event": event, "target_url": w.target_url})
    }

    /// Target URLs of the legacy webhooks registered for `name` (without prefix), filtered by
    /// their parameter when they have one.
    pub(crate) fn hook_targets(&self, name: &str, param: Option<u64>) -> Vec<String> {
        self.webhooks
            .values()
            .filter(|w| w.name == name)
            .filter(|w| match (&w.param, param) {
                (Some((_, v)), Some(p)) => v.as_u64() == Some(p),
                _ => true,
            })
            .map(|w| w.target_url.clone())
            .collect()
    }
}

/// Every account's data.
#[derive(Debug, Default)]
pub(crate) struct Accounts(HashMap<u64, AccountData>);

impl Accounts {
    pub(crate) fn get(
        &mut self,
        account_id: u64,
        now_ms: i64,
        max_records: usize,
    ) -> &mut AccountData {
        self.0
            .entry(account_id)
            .or_insert_with(|| AccountData::new(account_id, now_ms, max_records))
    }
}
