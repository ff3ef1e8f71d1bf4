//! The typed Kit API v4 client against kit-sandbox over loopback HTTP: every endpoint's shape,
//! its 201/200 distinction, paging, and at least one documented error each
//! (docs/kit-api-v4.md). Webhook deliveries and bulk callbacks are counted at a local receiver.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use common::*;
use futures_util::{StreamExt as _, TryStreamExt as _};
use kit_oauth_core::{ConnectionId, TokenEndpoint};
use kit_oauth_http::kit_api::*;
use kit_oauth_http::{ApiError, KitClient, KitRequest, RetryPolicy, TokenBody};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, SandboxBuilder, SandboxHandle};
use serde_json::{Value, json};

struct Env {
    sb: SandboxHandle,
    client: KitClient<Arc<SimpleSource>>,
    conn: ConnectionId,
}

async fn env_with(builder: SandboxBuilder) -> Env {
    let sb = builder.spawn().await.unwrap();
    let oauth = oauth(&sb, Some(SECRET), TokenBody::Json);
    let auth = authorize(&oauth, None, None).await;
    let tokens = oauth
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let source = SimpleSource::new(oauth, tokens.access_token, tokens.refresh_token.unwrap());
    let endpoints = endpoints_for(&sb, Some(SECRET)).build().unwrap();
    let client = KitClient::new(&endpoints, source)
        .unwrap()
        .with_retry_policy(RetryPolicy::none());
    Env {
        sb,
        client,
        conn: connection_id(),
    }
}

async fn env() -> Env {
    env_with(confidential()).await
}

/// Asserts Kit's status and messages.
fn assert_kit(err: &ApiError, status: u16, message: &str) {
    assert_eq!(err.kit_status(), Some(status), "{err}");
    assert_eq!(err.kit_messages(), [message.to_owned()], "{err}");
}

/// A local receiver of webhook deliveries and bulk callbacks.
struct Receiver {
    url: String,
    count: Arc<AtomicUsize>,
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
}

async fn receiver() -> Receiver {
    let count = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, b) = (count.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(v): Json<Value>| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                b.lock().unwrap().push(v);
                c.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}/hook"),
        count,
        bodies,
    }
}

impl Receiver {
    /// Waits until `n` bodies arrived (deliveries are asynchronous), then a little longer to
    /// catch any extra one, and returns them all.
    async fn expect(&self, n: usize) -> Vec<Value> {
        for _ in 0..500 {
            if self.count.load(Ordering::SeqCst) >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.bodies.lock().unwrap().clone()
    }
}

async fn control(sb: &SandboxHandle, body: Option<Value>) -> Value {
    let http = reqwest::Client::new();
    let req = match body {
        Some(b) => http.put(sb.url("/_sandbox/kit_api")).json(&b),
        None => http.get(sb.url("/_sandbox/kit_api")),
    };
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn account_is_typed_whole() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let account = client.api(conn).account().await.unwrap();
    assert_eq!(account.account.name, ACCOUNT);
    assert_eq!(account.account.plan_type.as_deref(), Some("creator"));
    assert_eq!(
        account.account.timezone.map(|t| t.utc_offset),
        Some(Some("-05:00".to_owned()))
    );
    assert!(account.user.email.ends_with("@example.com"));
}

#[tokio::test]
async fn subscribers_upsert_get_update_unsubscribe_and_list_filters() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn);
    let ada = api
        .upsert_subscriber(&NewSubscriber::email("ada@example.com").first_name("Ada"))
        .await
        .unwrap();
    assert!(ada.is_created());
    let ada = ada.into_inner();
    assert_eq!(ada.subscriber.state, SubscriberState::Active);
    assert!(ada.warnings.is_empty());
    let again = api
        .upsert_subscriber(
            &NewSubscriber::email("ADA@example.com")
                .first_name("Augusta")
                .field("nickname", "A"),
        )
        .await
        .unwrap();
    let Saved::Existing(again) = again else {
        panic!("expected 200, got {again:?}")
    };
    assert_eq!(again.subscriber.id, ada.subscriber.id);
    assert_eq!(again.subscriber.first_name.as_deref(), Some("Augusta"));
    assert_eq!(
        again.warnings.len(),
        1,
        "the unknown field key is a warning"
    );
    let err = api
        .upsert_subscriber(&NewSubscriber::email("not-an-email"))
        .await
        .unwrap_err();
    assert_kit(&err, 422, "Email address is invalid");

    let bob = api
        .upsert_subscriber(&NewSubscriber::email("bob@example.com"))
        .await
        .unwrap()
        .into_inner()
        .subscriber;
    let err = api
        .update_subscriber(
            bob.id,
            &SubscriberUpdate {
                email_address: Some("ada@example.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_kit(&err, 422, "Email address has already been taken");
    let updated = api
        .update_subscriber(
            bob.id,
            &SubscriberUpdate {
                first_name: Some("Bob".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.subscriber.first_name.as_deref(), Some("Bob"));

    api.unsubscribe(bob.id).await.unwrap();
    let got = api.subscriber(bob.id).await.unwrap();
    assert_eq!(got.state, SubscriberState::Cancelled);
    assert!(got.canceled_at.is_some());
    assert!(
        api.subscriber(SubscriberId(999_999))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        api.unsubscribe(SubscriberId(999_999))
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Default status is active, id descending.
    let active: Vec<Subscriber> = api
        .list_subscribers(&SubscriberFilter::default())
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        active.iter().map(|s| s.id).collect::<Vec<_>>(),
        [ada.subscriber.id]
    );
    let all: Vec<Subscriber> = api
        .list_subscribers(&SubscriberFilter {
            status: Some(None),
            sort_order: Some(SortOrder::Asc),
            ..Default::default()
        })
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|s| s.id).collect::<Vec<_>>(),
        [ada.subscriber.id, bob.id]
    );
    let by_email = api
        .list_subscribers(&SubscriberFilter {
            status: Some(None),
            email_address: Some("bob@example.com".into()),
            include: vec!["tags".into()],
            ..Default::default()
        })
        .first_page()
        .await
        .unwrap();
    assert_eq!(by_email.items.len(), 1);
    assert_eq!(by_email.items[0].tags, Some(vec![]));
    let err = api
        .list_subscribers(&SubscriberFilter {
            sort_field: Some(SortField::CancelledAt),
            ..Default::default()
        })
        .first_page()
        .await
        .unwrap_err();
    assert_kit(
        &err,
        422,
        "The status param must be `cancelled` if sort_field is `cancelled_at`",
    );
    let err = api
        .list_subscribers(&SubscriberFilter {
            created_after: Some("last tuesday".into()),
            ..Default::default()
        })
        .first_page()
        .await
        .unwrap_err();
    assert!(err.is_unprocessable(), "{err}");
}

#[tokio::test]
async fn tags_crud_tagging_by_id_and_email_and_subscriber_lists() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn);
    let tag = api.create_tag("Customers").await.unwrap();
    assert!(tag.is_created());
    let tag = tag.into_inner();
    assert!(
        matches!(api.create_tag("customers").await.unwrap(), Saved::Existing(t) if t.id == tag.id)
    );
    assert_kit(
        &api.create_tag("  ").await.unwrap_err(),
        422,
        "Name can't be blank",
    );
    let renamed = api.update_tag(tag.id, "Buyers").await.unwrap();
    assert_eq!(renamed.name, "Buyers");
    assert!(
        api.update_tag(TagId(999_999), "x")
            .await
            .unwrap_err()
            .is_not_found()
    );

    let s = api
        .upsert_subscriber(&NewSubscriber::email("c@example.com"))
        .await
        .unwrap()
        .into_inner()
        .subscriber;
    api.upsert_subscriber(&NewSubscriber::email("d@example.com"))
        .await
        .unwrap();
    let tagged = api.tag_subscriber(tag.id, s.id).await.unwrap();
    assert!(tagged.is_created());
    assert!(tagged.value().tagged_at.is_some());
    assert!(!api.tag_subscriber(tag.id, s.id).await.unwrap().is_created());
    assert!(
        api.tag_by_email(tag.id, "d@example.com")
            .await
            .unwrap()
            .is_created()
    );
    assert!(
        api.tag_by_email(tag.id, "nobody@example.com")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        api.tag_subscriber(TagId(999_999), s.id)
            .await
            .unwrap_err()
            .is_not_found()
    );

    let counted: Vec<Tag> = api.list_tags(true).items().try_collect().await.unwrap();
    assert_eq!(counted.len(), 1);
    assert_eq!(counted[0].subscriber_count, Some(2));
    let of_s: Vec<SubscriberTag> = api
        .subscriber_tags(s.id)
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(of_s.len(), 1);
    assert_eq!(of_s[0].id, tag.id);
    assert!(of_s[0].tagged_at.is_some());
    let members: Vec<Subscriber> = api
        .tag_subscribers(tag.id, &MemberFilter::default())
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.tagged_at.is_some()));

    api.untag_subscriber(tag.id, s.id).await.unwrap();
    api.untag_by_email(tag.id, "d@example.com").await.unwrap();
    assert!(
        api.untag_by_email(tag.id, "nobody@example.com")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let members = api
        .tag_subscribers(tag.id, &MemberFilter::default())
        .first_page()
        .await
        .unwrap();
    assert!(members.items.is_empty());
    api.delete_tag(tag.id).await.unwrap();
    assert!(api.delete_tag(tag.id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn custom_fields_crud_and_values_on_subscribers() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn);
    let field = api.create_custom_field("Last name").await.unwrap();
    assert!(field.is_created());
    let field = field.into_inner();
    assert_eq!(field.key, "last_name");
    assert!(
        !api.create_custom_field("Last name")
            .await
            .unwrap()
            .is_created()
    );
    assert_kit(
        &api.create_custom_field("").await.unwrap_err(),
        422,
        "Label can't be blank",
    );
    let s = api
        .upsert_subscriber(&NewSubscriber::email("e@example.com").field("last_name", "Lamarr"))
        .await
        .unwrap()
        .into_inner();
    assert!(s.warnings.is_empty());
    assert_eq!(s.subscriber.fields["last_name"].as_deref(), Some("Lamarr"));
    let relabelled = api
        .update_custom_field(field.id, "Family name")
        .await
        .unwrap();
    assert_eq!(relabelled.key, "family_name");
    assert_eq!(relabelled.name, field.name, "the name stays");
    let got = api.subscriber(s.subscriber.id).await.unwrap();
    assert_eq!(got.fields["family_name"].as_deref(), Some("Lamarr"));
    let fields: Vec<CustomField> = api
        .list_custom_fields()
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fields, [relabelled]);
    api.delete_custom_field(field.id).await.unwrap();
    assert!(
        api.delete_custom_field(field.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn forms_and_sequences_list_add_and_members() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn);
    let forms: Vec<Form> = api
        .list_forms(&FormFilter::default())
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(forms.len(), 2, "the archived form is not listed by default");
    let all = api
        .list_forms(&FormFilter {
            status: Some("all".into()),
            kind: Some("embed".into()),
        })
        .first_page()
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let form = forms[0].id;
    let s = api
        .upsert_subscriber(&NewSubscriber::email("f@example.com"))
        .await
        .unwrap()
        .into_inner()
        .subscriber;
    let added = api
        .add_to_form(form, s.id, Some("https://example.com/a"))
        .await
        .unwrap();
    assert!(added.is_created());
    assert_eq!(
        added.value().referrer.as_deref(),
        Some("https://example.com/a")
    );
    assert!(
        !api.add_to_form_by_email(form, "f@example.com", None)
            .await
            .unwrap()
            .is_created()
    );
    assert!(
        api.add_to_form(FormId(999_999), s.id, None)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let members = api
        .form_subscribers(form, &MemberFilter::default())
        .first_page()
        .await
        .unwrap();
    assert_eq!(members.items.len(), 1);
    assert!(members.items[0].added_at.is_some());

    let sequences: Vec<Sequence> = api.list_sequences().items().try_collect().await.unwrap();
    assert_eq!(sequences.len(), 2);
    let active = sequences.iter().find(|s| s.active).unwrap().id;
    let inactive = sequences.iter().find(|s| !s.active).unwrap().id;
    assert!(
        api.add_to_sequence(active, s.id)
            .await
            .unwrap()
            .is_created()
    );
    assert!(
        !api.add_to_sequence_by_email(active, "f@example.com")
            .await
            .unwrap()
            .is_created()
    );
    assert_kit(
        &api.add_to_sequence_by_email(inactive, "f@example.com")
            .await
            .unwrap_err(),
        422,
        "Sequence is inactive",
    );
    let members = api
        .sequence_subscribers(active, &MemberFilter::default())
        .first_page()
        .await
        .unwrap();
    assert_eq!(members.items.len(), 1);
    assert!(
        api.sequence_subscribers(SequenceId(999_999), &MemberFilter::default())
            .first_page()
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn broadcasts_crud_stats_and_the_sending_lock() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn);
    let templates: Vec<EmailTemplate> = api
        .list_email_templates()
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(templates.len(), 2);
    let draft = api
        .create_broadcast(&BroadcastInput {
            subject: Some("Hello".into()),
            content: Some("<p>Hi</p>".into()),
            email_template_id: Some(templates[0].id),
            subscriber_filter: Some(json!([{"all": [{"type": "tag", "ids": [1]}]}])),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(draft.status.as_deref(), Some("draft"));
    assert_eq!(
        draft.email_template.as_ref().map(|t| t.id),
        Some(templates[0].id)
    );
    assert_kit(
        &api.create_broadcast(&BroadcastInput {
            email_template_id: Some(EmailTemplateId(999_999)),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        422,
        "Email template not found",
    );
    let edited = api
        .update_broadcast(
            draft.id,
            &BroadcastInput {
                subject: Some("Hello again".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(edited.subject.as_deref(), Some("Hello again"));
    assert_eq!(api.broadcast(draft.id).await.unwrap(), edited);

    let sent = api
        .create_broadcast(&BroadcastInput {
            subject: Some("Now".into()),
            send_at: Some(Some("2020-01-01T00:00:00Z".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.status.as_deref(), Some("completed"));
    assert_kit(
        &api.delete_broadcast(sent.id).await.unwrap_err(),
        422,
        "Broadcast is already sending.",
    );
    let stats = api.broadcast_stats(sent.id).await.unwrap();
    assert_eq!(stats.stats["status"], "completed");
    let all: Vec<BroadcastStats> = api
        .list_broadcast_stats()
        .items()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let slim = api
        .list_broadcasts(&BroadcastFilter {
            status: Some("draft".into()),
            slim: true,
            ..Default::default()
        })
        .first_page()
        .await
        .unwrap();
    assert_eq!(slim.items.len(), 1);
    assert_eq!(slim.items[0].content, None);
    api.delete_broadcast(draft.id).await.unwrap();
    assert!(api.broadcast(draft.id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn webhooks_are_registered_and_delivered_on_create_and_tag() {
    let Env { sb, client, conn } = env().await;
    let api = client.api(conn.clone());
    let rx = receiver().await;
    let tag = api.create_tag("VIP").await.unwrap().into_inner();
    let other = api.create_tag("Other").await.unwrap().into_inner();
    let on_tag = api
        .create_webhook(&rx.url, &WebhookEvent::TagAdd(tag.id))
        .await
        .unwrap();
    assert_eq!(on_tag.event, WebhookEvent::TagAdd(tag.id));
    api.create_webhook(&rx.url, &WebhookEvent::SubscriberActivate)
        .await
        .unwrap();
    // Kit's PHP SDK sends `course_id` for the sequence events: accepted, echoed as sequence_id.
    let raw = client
        .send(
            &conn,
            &KitRequest::post("/v4/webhooks")
                .json(&json!({"target_url": rx.url, "event": {"name": "subscriber.course_complete", "course_id": 7}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let echoed: Value = raw.json().unwrap();
    assert_eq!(
        echoed["webhook"]["event"],
        json!({"name": "course_complete", "sequence_id": 7})
    );
    let missing = client
        .send(
            &conn,
            &KitRequest::post("/v4/webhooks")
                .json(&json!({"target_url": rx.url}))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_kit(
        &missing,
        422,
        "`event` and `target` parameters must be provided",
    );

    let s = api
        .upsert_subscriber(&NewSubscriber::email("g@example.com"))
        .await
        .unwrap()
        .into_inner()
        .subscriber;
    api.tag_subscriber(tag.id, s.id).await.unwrap();
    api.tag_subscriber(tag.id, s.id).await.unwrap(); // already tagged: no delivery
    api.tag_subscriber(other.id, s.id).await.unwrap(); // no webhook for this tag
    let bodies = rx.expect(2).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies
            .iter()
            .all(|b| b["subscriber"]["email_address"] == "g@example.com")
    );
    assert_eq!(control(&sb, None).await["deliveries"]["ok"], 2);

    let hooks: Vec<Webhook> = api.list_webhooks().items().try_collect().await.unwrap();
    assert_eq!(hooks.len(), 3);
    assert!(
        hooks
            .iter()
            .any(|h| h.event == WebhookEvent::CourseComplete(SequenceId(7)))
    );
    api.delete_webhook(on_tag.id).await.unwrap();
    assert!(
        api.delete_webhook(on_tag.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn bulk_endpoints_sync_results_failures_and_errors() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn);
    let subs = ["h@example.com", "bad", "i@example.com"].map(|e| BulkSubscriber {
        email_address: e.into(),
        first_name: None,
        state: None,
    });
    let done = api
        .bulk_upsert_subscribers(&subs, None)
        .await
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(done.items.len(), 2);
    assert_eq!(done.failures.len(), 1);
    assert_eq!(done.failures[0].errors, ["Email address is invalid"]);
    assert_eq!(done.failures[0].item["subscriber"]["email_address"], "bad");
    assert_kit(
        &api.bulk_upsert_subscribers(&[], None).await.unwrap_err(),
        422,
        "No subscribers included for processing",
    );
    let tags = api
        .bulk_create_tags(&["a", "b"], None)
        .await
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(tags.items.len(), 2);
    let taggings: Vec<BulkTagging> = done
        .items
        .iter()
        .map(|s| BulkTagging {
            tag_id: tags.items[0].id,
            subscriber_id: s.id,
        })
        .chain([BulkTagging {
            tag_id: TagId(999_999),
            subscriber_id: done.items[0].id,
        }])
        .collect();
    let tagged = api.bulk_tag(&taggings, None).await.unwrap().done().unwrap();
    assert_eq!((tagged.items.len(), tagged.failures.len()), (2, 1));
    assert!(tagged.failures[0].item.contains_key("tagging"));
    let untagged = api
        .bulk_untag(&taggings[..2], None)
        .await
        .unwrap()
        .done()
        .unwrap();
    assert!(untagged.failures.is_empty());
    let form = api
        .list_forms(&FormFilter::default())
        .first_page()
        .await
        .unwrap()
        .items[0]
        .id;
    let additions = [BulkFormAddition {
        form_id: form,
        subscriber_id: done.items[0].id,
        referrer: None,
    }];
    let added = api
        .bulk_add_to_forms(&additions, None)
        .await
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(added.items.len(), 1);
    let fields = api
        .bulk_create_custom_fields(&["Company"], None)
        .await
        .unwrap()
        .done()
        .unwrap();
    let values = [BulkCustomFieldValue {
        subscriber_id: done.items[0].id,
        subscriber_custom_field_id: fields.items[0].id,
        value: "Acme".into(),
    }];
    let set = api
        .bulk_set_custom_field_values(&values, None)
        .await
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(set.items[0].value.as_deref(), Some("Acme"));
    let s = api.subscriber(done.items[0].id).await.unwrap();
    assert_eq!(s.fields["company"].as_deref(), Some("Acme"));
    let deleted = api
        .bulk_delete_tags(&[tags.items[1].id, TagId(999_999)], None)
        .await
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(deleted.failures.len(), 1);
    let left: Vec<Tag> = api.list_tags(false).items().try_collect().await.unwrap();
    assert_eq!(left.len(), 1);
}

fn many(n: usize, domain: &str) -> Vec<BulkSubscriber> {
    (0..n)
        .map(|i| BulkSubscriber {
            email_address: format!("user{i}@{domain}"),
            first_name: None,
            state: None,
        })
        .collect()
}

#[tokio::test]
async fn bulk_above_100_is_queued_and_called_back_and_the_queue_limit_is_413() {
    let Env { sb, client, conn } = env().await;
    let api = client.api(conn);
    let rx = receiver().await;
    let outcome = api
        .bulk_upsert_subscribers(&many(150, "example.com"), Some(&rx.url))
        .await
        .unwrap();
    assert_eq!(outcome, BulkOutcome::Queued);
    let bodies = rx.expect(1).await;
    assert_eq!(bodies.len(), 1);
    let result: BulkResult<Subscriber> =
        BulkResult::from_value(bodies[0].clone(), Some("subscribers")).unwrap();
    assert_eq!((result.items.len(), result.failures.len()), (150, 0));
    let listed = api
        .list_subscribers(&SubscriberFilter::default())
        .include_total_count(true)
        .per_page(1)
        .first_page()
        .await
        .unwrap();
    assert_eq!(listed.total_count, Some(150));

    // Paused, with room for one queued request: the second is refused with Kit's 413.
    let one = serde_json::to_vec(&json!({"subscribers": many(101, "example.org")})).unwrap();
    control(
        &sb,
        Some(json!({"bulk_paused": true, "bulk_queue_limit_bytes": one.len() + 10})),
    )
    .await;
    assert_eq!(
        api.bulk_upsert_subscribers(&many(101, "example.org"), None)
            .await
            .unwrap(),
        BulkOutcome::Queued
    );
    let err = api
        .bulk_upsert_subscribers(&many(101, "example.net"), None)
        .await
        .unwrap_err();
    assert!(err.is_bulk_queue_full(), "{err}");
    assert_eq!(
        err.kit_messages(),
        [
            "This request exceeds your queued bulk requests limit. Please wait while we process your existing requests and try again later."
        ]
    );
    assert_eq!(control(&sb, None).await["bulk"]["queued_jobs"], 1);
    control(&sb, Some(json!({"bulk_paused": false}))).await;
    for _ in 0..500 {
        if control(&sb, None).await["bulk"]["queued_jobs"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = control(&sb, None).await;
    assert_eq!(status["bulk"]["processed_jobs"], 2);
}

#[tokio::test]
async fn purchases_segments_and_email_templates() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn.clone());
    let purchase = api
        .create_purchase(&NewPurchase {
            transaction_id: "tx-1".into(),
            email_address: "buyer@example.com".into(),
            currency: "EUR".into(),
            total: Some(12.5),
            products: vec![Product {
                name: "Book".into(),
                pid: "p1".into(),
                lid: "l1".into(),
                quantity: 1,
                unit_price: 12.5,
                sku: None,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(purchase.currency, "EUR");
    assert!(
        purchase.subscriber_id.is_some(),
        "the buyer becomes a subscriber"
    );
    assert_eq!(api.purchase(purchase.id).await.unwrap(), purchase);
    assert!(
        api.purchase(PurchaseId(999_999))
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Kit's PHP SDK sends the purchase unwrapped: accepted too.
    client
        .send(
            &conn,
            &KitRequest::post("/v4/purchases")
                .json(&json!({"transaction_id": "tx-2", "email_address": "b2@example.com", "currency": "USD"}))
                .unwrap(),
        )
        .await
        .unwrap();
    let err = client
        .send(
            &conn,
            &KitRequest::post("/v4/purchases")
                .json(&json!({"purchase": {"email_address": "x@example.com"}}))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_kit(&err, 422, "Transaction id can't be blank");
    let purchases: Vec<Purchase> = api.list_purchases().items().try_collect().await.unwrap();
    assert_eq!(purchases.len(), 2);
    let segments: Vec<Segment> = api.list_segments().items().try_collect().await.unwrap();
    assert_eq!(segments.len(), 2);
    let templates = api.list_email_templates().first_page().await.unwrap();
    assert_eq!(templates.items.iter().filter(|t| t.is_default).count(), 1);
}

#[tokio::test]
async fn paging_follows_cursors_lazily_with_total_count() {
    let Env { sb, client, conn } = env().await;
    let api = client.api(conn);
    let names: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    api.bulk_create_tags(&refs, None).await.unwrap();
    let pages: Vec<ListPage<Tag>> = api
        .list_tags(false)
        .per_page(3)
        .include_total_count(true)
        .pages()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        pages.iter().map(|p| p.items.len()).collect::<Vec<_>>(),
        [3, 3, 1]
    );
    assert!(pages.iter().all(|p| p.total_count == Some(7)));
    assert!(!pages[0].pagination.has_previous_page);
    assert!(pages[1].pagination.has_previous_page);
    assert!(!pages[2].pagination.has_next_page);
    let ids: Vec<u64> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|t| t.id.0))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "id descending by default");

    // Lazy: taking 3 items at 2 per page costs exactly two list calls.
    sb.reset_stats();
    let first: Vec<Tag> = api
        .list_tags(false)
        .per_page(2)
        .items()
        .take(3)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(sb.stats().requests.get("api"), Some(&2));

    let err = api
        .list_tags(false)
        .after("not-a-cursor!")
        .first_page()
        .await
        .unwrap_err();
    assert_kit(&err, 400, "Invalid cursor");
}

#[tokio::test]
async fn rate_limit_is_a_plain_text_429_and_faults_apply() {
    let Env { sb, client, conn } = env_with(confidential().rate_limit(3)).await;
    let api = client.api(conn);
    for _ in 0..3 {
        api.list_segments().first_page().await.unwrap();
    }
    let err = api.list_segments().first_page().await.unwrap_err();
    assert!(
        matches!(err, ApiError::RateLimited { retry_after: None }),
        "{err}"
    );
    assert_eq!(sb.stats().rate_limited_429, 1);

    let sb2 = confidential().spawn().await.unwrap();
    sb2.add_fault(Fault::new(
        FaultEndpoint::Api,
        FaultKind::Status {
            status: 503,
            body: None,
            retry_after: None,
        },
    ))
    .unwrap();
    let raw = reqwest::Client::new()
        .get(sb2.url("/v4/tags"))
        .bearer_auth("whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 503, "the fault comes before authentication");
    assert_eq!(sb2.stats().faults_injected, 1);
}
