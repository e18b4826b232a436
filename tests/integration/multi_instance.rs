//! Two broker processes on one PostgreSQL database behave as one broker: a subscription
//! created, changed or deleted through one is applied to writes through the other, and
//! each notification is delivered at least once and, normally, exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use crate::subscriptions::Receiver;

const WAIT: Duration = Duration::from_secs(20);

/// Writes a probe through `api` until a notification for it arrives on `path`: then
/// the broker behind `api` knows the subscription. Returns the probes' ids.
async fn until_known(api: &Api, rx: &Receiver, path: &str, kind: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut probes = Vec::new();
    loop {
        let id = uid(kind);
        api.create(&json!({ "id": id, "type": kind, "probe": 1 }))
            .await;
        probes.push(id.clone());
        for _ in 0..10 {
            if rx
                .ok(path)
                .iter()
                .any(|n| n.body["data"][0]["id"] == json!(id))
            {
                return probes;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            Instant::now() < deadline,
            "the second broker never learnt of the subscription"
        );
    }
}

/// How many times each (entity, level) was notified on `path`.
fn deliveries(rx: &Receiver, path: &str) -> HashMap<(String, i64), usize> {
    let mut seen = HashMap::new();
    for n in rx.ok(path) {
        for e in n.body["data"].as_array().into_iter().flatten() {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            if let Some(level) = e["level"]["value"].as_i64() {
                *seen.entry((id, level)).or_insert(0) += 1;
            }
        }
    }
    seen
}

#[tokio::test]
async fn two_brokers_on_one_database_act_as_one() {
    let a = TestServer::start(&[]);
    if a.database_url().is_none() {
        eprintln!("multi_instance: PostgreSQL is not available here; nothing to check");
        return;
    }
    let b = TestServer::start_sharing(&a, &[]);
    let api_a = a.api();
    let api_b = Api::new(&b.base_url, api_a.tenant.clone());
    let rx = Receiver::start().await;

    // Created through A, it fires for writes through B.
    let sub = json!({
        "id": uid("Subscription"),
        "type": "Subscription",
        "entities": [{ "type": "Tank" }],
        "notification": { "endpoint": { "uri": rx.url("/tanks"), "accept": "application/json" } }
    });
    let r = api_a.post("/subscriptions", &sub).await;
    r.expect(201);
    let sid = sub["id"].as_str().expect("id").to_string();
    // B read it from the shared database too.
    api_b
        .get(&format!("/subscriptions/{sid}"))
        .await
        .expect(200);
    until_known(&api_b, &rx, "/tanks", "Tank").await;

    // Writes through both brokers: every one notified, none twice.
    let ids: Vec<String> = (0..10).map(|_| uid("Tank")).collect();
    for (i, id) in ids.iter().enumerate() {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        api.create(&json!({ "id": id, "type": "Tank", "level": 1 }))
            .await;
        api.patch(&format!("/entities/{id}/attrs"), &json!({ "level": 2 }))
            .await
            .expect(204);
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = deliveries(&rx, "/tanks");
        let complete = ids
            .iter()
            .all(|id| [1, 2].iter().all(|l| seen.contains_key(&(id.clone(), *l))));
        if complete {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every write was notified: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give a duplicate the time to show up (the other broker polls the outbox too).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let seen = deliveries(&rx, "/tanks");
    for id in &ids {
        for level in [1, 2] {
            assert_eq!(
                seen.get(&(id.clone(), level)),
                Some(&1),
                "{id} level {level} must be delivered exactly once: {seen:?}"
            );
        }
    }

    // Updated through B (now only level > 5), A applies the new filter.
    api_b
        .patch(&format!("/subscriptions/{sid}"), &json!({ "q": "level>5" }))
        .await
        .expect(204);
    let deadline = Instant::now() + WAIT;
    let watched = uid("Tank");
    api_a
        .create(&json!({ "id": watched, "type": "Tank", "level": 1 }))
        .await;
    let mut level = 1;
    loop {
        // Low levels are filtered out once A knows the new q; a high one then passes.
        level += 1;
        api_a
            .patch(
                &format!("/entities/{watched}/attrs"),
                &json!({ "level": 1 }),
            )
            .await
            .expect(204);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = rx.ok("/tanks").len();
        api_a
            .patch(
                &format!("/entities/{watched}/attrs"),
                &json!({ "level": level }),
            )
            .await
            .expect(204);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let low_seen = rx.ok("/tanks").iter().skip(before).any(|n| {
            n.body["data"][0]["id"] == json!(watched)
                && n.body["data"][0]["level"]["value"] == json!(1)
        });
        if !low_seen && level > 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never applied the q set through B"
        );
    }
    let high: Vec<Value> = rx
        .ok("/tanks")
        .into_iter()
        .map(|n| n.body["data"][0].clone())
        .filter(|e| e["id"] == json!(watched))
        .collect();
    assert!(
        high.iter().any(|e| e["level"]["value"].as_i64() > Some(5)),
        "a level above 5 written through A is notified: {high:?}"
    );

    // Deleted through B: writes through A stop notifying.
    api_b
        .delete(&format!("/subscriptions/{sid}"))
        .await
        .expect(204);
    let deadline = Instant::now() + WAIT;
    loop {
        let before = rx.on("/tanks").len();
        let id = uid("Tank");
        api_a
            .create(&json!({ "id": id, "type": "Tank", "level": 9 }))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if rx.on("/tanks").len() == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A kept notifying a subscription deleted through B"
        );
    }
    api_a
        .get(&format!("/subscriptions/{sid}"))
        .await
        .expect(404);
}

/// Periodic (timeInterval) notifications are sent by one broker only, however many
/// share the database: without a leader each broker would send its own.
#[tokio::test]
async fn periodic_notifications_come_from_one_broker() {
    let a = TestServer::start(&[]);
    if a.database_url().is_none() {
        eprintln!("multi_instance: PostgreSQL is not available here; nothing to check");
        return;
    }
    let b = TestServer::start_sharing(&a, &[]);
    let api_a = a.api();
    let api_b = Api::new(&b.base_url, api_a.tenant.clone());
    let rx = Receiver::start().await;
    let id = uid("Station");
    api_a
        .create(&json!({ "id": id, "type": "Station", "temp": 21 }))
        .await;
    let sub = json!({
        "id": uid("Subscription"),
        "type": "Subscription",
        "entities": [{ "type": "Station" }],
        "timeInterval": 2,
        "notification": { "endpoint": { "uri": rx.url("/periodic"), "accept": "application/json" } }
    });
    api_a.post("/subscriptions", &sub).await.expect(201);
    let sid = sub["id"].as_str().expect("id").to_string();
    api_b
        .get(&format!("/subscriptions/{sid}"))
        .await
        .expect(200);
    rx.wait_ok("/periodic", 1).await;
    // Both brokers know the subscription by now; over 10 s one sender gives about 5
    // more notifications, two senders about 10.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let n = rx.ok("/periodic").len();
    assert!(
        (2..=8).contains(&n),
        "{n} periodic notifications in ~10 s at a 2 s interval"
    );
}
