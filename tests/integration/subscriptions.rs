//! Subscriptions and notifications (issue 5): CRUD and validation, then notifications
//! received by a real HTTP receiver run by the test (and a real Mosquitto for MQTT).
//! Every wait polls against a deadline; nothing asserts on timing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common::*;

const WAIT: Duration = Duration::from_secs(20);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The status the receiver answered with.
    pub status: u16,
}

/// A minimal HTTP/1.1 server that records every POST and answers with a settable
/// status (keep-alive supported, as reqwest pools connections).
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    stopped: Arc<AtomicBool>,
    /// How long the receiver waits before answering, in ms.
    delay_ms: Arc<AtomicU64>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_at("127.0.0.1:0".parse().expect("addr")).await
    }

    pub async fn start_at(addr: SocketAddr) -> Receiver {
        let listener = TcpListener::bind(addr).await.expect("bind the receiver");
        let r = Receiver {
            addr: listener.local_addr().expect("local addr"),
            received: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(AtomicU16::new(200)),
            stopped: Arc::new(AtomicBool::new(false)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            task: Arc::new(Mutex::new(None)),
        };
        r.serve(listener);
        r
    }

    fn serve(&self, listener: TcpListener) {
        let (received, status) = (self.received.clone(), self.status.clone());
        let stopped = self.stopped.clone();
        let delay = self.delay_ms.clone();
        let handle = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (received, status) = (received.clone(), status.clone());
                let stopped = stopped.clone();
                let delay = delay.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut reader = BufReader::new(read);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                        let mut headers = HashMap::new();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                            }
                        }
                        let len: usize = headers
                            .get("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0u8; len];
                        if reader.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        if stopped.load(Ordering::SeqCst) {
                            return; // a stopped receiver hangs up without answering
                        }
                        let code = status.load(Ordering::SeqCst);
                        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let wait = delay.load(Ordering::SeqCst);
                        if wait > 0 {
                            // Seen (arrived) now, answered later.
                            received.lock().expect("lock").push(Received {
                                path: path.clone(),
                                headers: headers.clone(),
                                body: body.clone(),
                                status: 0,
                            });
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                            received.lock().expect("lock").retain(|r| r.status != 0);
                        }
                        received.lock().expect("lock").push(Received {
                            path,
                            headers,
                            body,
                            status: code,
                        });
                        let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
                        if write.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        *self.task.lock().expect("lock") = Some(handle);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Makes the receiver wait this long before answering.
    pub fn set_delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    /// Every request received so far on `path` (any path if empty).
    pub fn on(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| path.is_empty() || r.path == path)
            .cloned()
            .collect()
    }

    /// Successful (2xx-answered) notifications on `path`.
    pub fn ok(&self, path: &str) -> Vec<Received> {
        self.on(path)
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until at least `n` notifications were answered 2xx on `path`.
    pub async fn wait_ok(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.ok(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} notification(s) on {path} within {WAIT:?}, got {}: {:#?}",
                got.len(),
                self.on("")
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until at least `n` requests (any answer) arrived on `path`.
    pub async fn wait_any(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.on(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} request(s) on {path} within {WAIT:?}, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops listening (connections are refused from now on).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(h) = self.task.lock().expect("lock").take() {
            h.abort();
        }
    }
}

/// Polls GET /subscriptions/{id} until `check` holds.
async fn wait_subscription(api: &Api, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = api.get(&format!("/subscriptions/{id}")).await;
        r.expect(200);
        let v = r.json();
        if check(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "subscription {id} never reached the expected state: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sub(entities_type: &str, uri: &str) -> Value {
    json!({
        "id": uid("Subscription"),
        "type": "Subscription",
        "entities": [{ "type": entities_type }],
        "notification": { "endpoint": { "uri": uri, "accept": "application/json" } }
    })
}

async fn subscribe(api: &Api, body: &Value) -> String {
    let r = api.post("/subscriptions", body).await;
    assert_eq!(
        r.status, 201,
        "subscription not created: {} for {body}",
        r.text
    );
    let loc = r.header("location").expect("Location header");
    let id = body["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| loc.rsplit('/').next().expect("id in Location").to_string());
    assert!(loc.ends_with(&id), "Location {loc} should name {id}");
    id
}

fn data0(n: &Received) -> &Value {
    &n.body["data"][0]
}

// ---------------------------------------------------------------------------------
// CRUD and validation

#[tokio::test]
async fn create_retrieve_list_update_delete() {
    let api = api();
    let id = uid("Subscription");
    let body = json!({
        "id": id,
        "type": "Subscription",
        "subscriptionName": "rivers",
        "entities": [{ "type": "WaterObserved" }],
        "watchedAttributes": ["flow"],
        "q": "flow>10",
        "notification": {
            "attributes": ["flow"],
            "format": "keyValues",
            "endpoint": { "uri": "http://127.0.0.1:9/notify", "accept": "application/json",
                          "receiverInfo": [{ "key": "X-Token", "value": "abc" }] }
        },
        "throttling": 2
    });
    api.json_linked(Method::POST, "/subscriptions", &body, SDM_ENVIRONMENT)
        .await
        .expect(201);

    // Read back with the same context: short names; with the core one: expanded names.
    let r = api
        .get_with(
            &format!("/subscriptions/{id}"),
            &[("Link", &link(SDM_ENVIRONMENT))],
        )
        .await;
    r.expect(200);
    let s = r.json();
    assert_eq!(s["id"], id);
    assert_eq!(s["type"], "Subscription");
    assert_eq!(s["subscriptionName"], "rivers");
    assert_eq!(s["entities"][0]["type"], "WaterObserved");
    assert_eq!(s["watchedAttributes"], json!(["flow"]));
    assert_eq!(s["notification"]["attributes"], json!(["flow"]));
    assert_eq!(s["notification"]["format"], "keyValues");
    assert_eq!(
        s["notification"]["endpoint"]["receiverInfo"][0]["key"],
        "X-Token"
    );
    assert_eq!(s["status"], "active");
    assert_eq!(s["jsonldContext"], SDM_ENVIRONMENT);
    assert!(
        s["notification"].get("timesSent").is_none(),
        "no counters before a notification"
    );
    assert_eq!(
        s["notificationTrigger"],
        json!(["attributeCreated", "attributeUpdated"])
    );
    let core = api.get(&format!("/subscriptions/{id}")).await.json();
    assert_eq!(
        core["entities"][0]["type"],
        format!("{SDM_ENV_PREFIX}WaterObserved")
    );
    assert!(r
        .header("link")
        .is_some_and(|l| l.contains(SDM_ENVIRONMENT)));

    // JSON-LD: the @context is in the body.
    let ld = api
        .get_with(
            &format!("/subscriptions/{id}"),
            &[("Accept", "application/ld+json")],
        )
        .await;
    ld.expect(200);
    assert!(ld.json().get("@context").is_some());

    // A second one, then the list with paging and count.
    let id2 = subscribe(&api, &sub("Car", "http://127.0.0.1:9/n")).await;
    let r = api.get("/subscriptions?count=true&limit=1").await;
    r.expect(200);
    assert_eq!(r.header("ngsild-results-count").as_deref(), Some("2"));
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    assert!(r.headers.get_all("link").iter().any(|l| l
        .to_str()
        .is_ok_and(|l| l.contains("offset=1>") && l.contains("rel=\"next\""))));
    let r = api.get("/subscriptions?limit=1&offset=1").await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    assert!(r.headers.get_all("link").iter().any(|l| l
        .to_str()
        .is_ok_and(|l| l.contains("offset=0>") && l.contains("rel=\"prev\""))));
    let all = api.get("/subscriptions").await.json();
    let ids: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(ids.contains(&id.as_str()) && ids.contains(&id2.as_str()));

    // PATCH: pause, rename; status follows isActive.
    api.patch(
        &format!("/subscriptions/{id}"),
        &json!({ "isActive": false, "subscriptionName": "paused rivers" }),
    )
    .await
    .expect(204);
    let s = api.get(&format!("/subscriptions/{id}")).await.json();
    assert_eq!(s["status"], "paused");
    assert_eq!(s["isActive"], false);
    assert_eq!(s["subscriptionName"], "paused rivers");
    assert_eq!(s["q"], "flow>10", "untouched members stay");
    api.patch(
        &format!("/subscriptions/{id}"),
        &json!({ "isActive": true }),
    )
    .await
    .expect(204);
    assert_eq!(
        api.get(&format!("/subscriptions/{id}")).await.json()["status"],
        "active"
    );

    // Another tenant does not see them.
    let other = api.in_tenant(Some(&new_tenant()));
    other.create(&json!({ "id": uid("X"), "type": "X" })).await;
    assert_problem(
        &other.get(&format!("/subscriptions/{id}")).await,
        404,
        "ResourceNotFound",
    );

    // DELETE, then it is gone.
    api.delete(&format!("/subscriptions/{id}"))
        .await
        .expect(204);
    assert_problem(
        &api.get(&format!("/subscriptions/{id}")).await,
        404,
        "ResourceNotFound",
    );
    assert_problem(
        &api.delete(&format!("/subscriptions/{id}")).await,
        404,
        "ResourceNotFound",
    );
}

#[tokio::test]
async fn bad_subscriptions_are_refused_with_400() {
    let api = api();
    let base = sub("Car", "http://127.0.0.1:9/n");
    let with = |patch: Value| {
        let mut b = base.clone();
        b["id"] = json!(uid("Subscription"));
        for (k, v) in patch.as_object().expect("object") {
            if v.is_null() {
                b.as_object_mut().expect("object").remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let past = "2001-01-01T00:00:00Z";
    let cases: Vec<(&str, Value)> = vec![
        (
            "unknown trigger",
            with(json!({ "notificationTrigger": ["entityTouched"] })),
        ),
        ("invalid q", with(json!({ "q": "(speed==1" }))),
        (
            "timeInterval with watchedAttributes",
            with(json!({ "timeInterval": 5, "watchedAttributes": ["speed"] })),
        ),
        ("past expiresAt", with(json!({ "expiresAt": past }))),
        (
            "relative endpoint",
            with(json!({ "notification": { "endpoint": { "uri": "/notify" } } })),
        ),
        (
            "ftp endpoint",
            with(json!({ "notification": { "endpoint": { "uri": "ftp://example.org/x" } } })),
        ),
        ("no notification", with(json!({ "notification": null }))),
        (
            "no entities nor watchedAttributes",
            with(json!({ "entities": null })),
        ),
        (
            "entity selector without type",
            with(json!({ "entities": [{ "id": "urn:ngsi-ld:Car:1" }] })),
        ),
        ("negative throttling", with(json!({ "throttling": -1 }))),
        (
            "bad geoQ georel",
            with(
                json!({ "geoQ": { "geometry": "Point", "coordinates": [1, 2], "georel": "besides" } }),
            ),
        ),
        (
            "bad geoQ geometry",
            with(
                json!({ "geoQ": { "geometry": "Circle", "coordinates": [1, 2], "georel": "within" } }),
            ),
        ),
        ("wrong type", with(json!({ "type": "Subscriptions" }))),
        (
            "bad format",
            with(
                json!({ "notification": { "format": "pretty", "endpoint": { "uri": "http://127.0.0.1:9/n" } } }),
            ),
        ),
        ("id not a URI", with(json!({ "id": "not a uri" }))),
        (
            "bad idPattern",
            with(json!({ "entities": [{ "type": "Car", "idPattern": "(" }] })),
        ),
    ];
    for (what, body) in cases {
        let r = api.post("/subscriptions", &body).await;
        assert_eq!(r.status, 400, "{what}: {body} answered {}", r.text);
        let p = assert_problem(&r, 400, "BadRequestData");
        assert!(
            p["detail"].as_str().is_some_and(|d| d.len() > 10),
            "{what}: a clear detail, got {p}"
        );
    }
    // Malformed JSON and a non-object body.
    let r = api
        .body(
            Method::POST,
            "/subscriptions",
            "application/json",
            "{not json",
        )
        .await;
    assert_problem_any(&r, 400, BAD_BODY);
    let r = api.post("/subscriptions", &json!([1, 2])).await;
    assert_problem_any(&r, 400, BAD_BODY);
    // A taken id.
    let b = with(json!({}));
    subscribe(&api, &b).await;
    assert_problem(&api.post("/subscriptions", &b).await, 409, "AlreadyExists");
    // Ids in paths.
    assert_problem(
        &api.get("/subscriptions/notauri").await,
        400,
        "BadRequestData",
    );
    assert_problem(
        &api.get(&format!("/subscriptions/{}", uid("Subscription")))
            .await,
        404,
        "ResourceNotFound",
    );
    // PATCH: a past expiresAt, removing notification, a bad trigger.
    let id = b["id"].as_str().expect("id");
    for fragment in [
        json!({ "expiresAt": past }),
        json!({ "notification": null }),
        json!({ "notificationTrigger": ["sometimes"] }),
    ] {
        assert_problem(
            &api.patch(&format!("/subscriptions/{id}"), &fragment).await,
            400,
            "BadRequestData",
        );
    }
    assert_problem(
        &api.patch(
            &format!("/subscriptions/{}", uid("Subscription")),
            &json!({ "isActive": false }),
        )
        .await,
        404,
        "ResourceNotFound",
    );
}

#[tokio::test]
async fn inline_context_becomes_an_implicitly_created_context() {
    let api = api();
    let id = uid("Subscription");
    let body = json!({
        "id": id, "type": "Subscription",
        "entities": [{ "type": "Boat" }],
        "notification": { "endpoint": { "uri": "http://127.0.0.1:9/n" } },
        "@context": [{ "Boat": "https://example.org/Boat" }, CORE_CONTEXT]
    });
    api.post_ld("/subscriptions", &body).await.expect(201);
    let s = api.get(&format!("/subscriptions/{id}")).await.json();
    let url = s["jsonldContext"]
        .as_str()
        .expect("jsonldContext")
        .to_string();
    assert!(url.contains("/jsonldContexts/"), "a hosted URL, got {url}");
    assert_eq!(s["entities"][0]["type"], "https://example.org/Boat");
    let r = api
        .raw(Method::GET, &url)
        .send()
        .await
        .expect("GET the context");
    assert_eq!(r.status(), 200);
    let listed = api
        .get("/jsonldContexts?kind=ImplicitlyCreated")
        .await
        .json();
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .any(|u| u == &json!(url)),
        "{url} listed in {listed}"
    );
}

// ---------------------------------------------------------------------------------
// Notifications

#[tokio::test]
async fn each_trigger_fires_on_its_change() {
    let api = api();
    let rx = Receiver::start().await;
    let triggers = [
        "entityCreated",
        "entityUpdated",
        "entityDeleted",
        "attributeCreated",
        "attributeUpdated",
        "attributeDeleted",
    ];
    for t in triggers {
        let mut s = sub("Pump", &rx.url(&format!("/{t}")));
        s["notificationTrigger"] = json!([t]);
        subscribe(&api, &s).await;
    }
    let id = uid("Pump");
    api.create(&json!({ "id": id, "type": "Pump", "pressure": 1 }))
        .await;
    let n = rx.wait_ok("/entityCreated", 1).await;
    assert_eq!(data0(&n[0])["id"], id);
    rx.wait_ok("/attributeCreated", 1).await;

    api.patch(&format!("/entities/{id}/attrs"), &json!({ "pressure": 2 }))
        .await
        .expect(204);
    let n = rx.wait_ok("/attributeUpdated", 1).await;
    assert_eq!(data0(&n[0])["pressure"]["value"], 2);
    rx.wait_ok("/entityUpdated", 1).await;

    api.post(&format!("/entities/{id}/attrs"), &json!({ "speed": 3 }))
        .await
        .expect(204);
    let n = rx.wait_ok("/attributeCreated", 2).await;
    assert_eq!(n[1].body["data"][0]["speed"]["value"], 3);
    rx.wait_ok("/entityUpdated", 2).await;

    api.delete(&format!("/entities/{id}/attrs/speed"))
        .await
        .expect(204);
    let n = rx.wait_ok("/attributeDeleted", 1).await;
    assert_eq!(data0(&n[0])["speed"]["value"], "urn:ngsi-ld:null");

    api.delete(&ent(&id)).await.expect(204);
    let n = rx.wait_ok("/entityDeleted", 1).await;
    assert_eq!(data0(&n[0])["id"], id);
    assert!(data0(&n[0]).get("deletedAt").is_some());

    // Nothing else arrived for the one-shot triggers.
    assert_eq!(rx.on("/entityCreated").len(), 1);
    assert_eq!(rx.on("/entityDeleted").len(), 1);
    assert_eq!(rx.on("/attributeUpdated").len(), 1);

    // The Notification itself.
    let n = &rx.ok("/entityCreated")[0];
    assert_eq!(n.body["type"], "Notification");
    assert!(n.body["id"]
        .as_str()
        .is_some_and(|i| i.starts_with("urn:ngsi-ld:Notification:")));
    assert_datetime(&n.body["notifiedAt"]);
    assert!(n.headers["content-type"].starts_with("application/json"));
    assert!(n.headers["link"].contains(CORE_CONTEXT));
    assert_eq!(
        n.headers.get("ngsild-tenant").map(String::as_str),
        api.tenant.as_deref()
    );
}

#[tokio::test]
async fn batch_writes_notify_too() {
    let api = api();
    let rx = Receiver::start().await;
    let mut s = sub("Meter", &rx.url("/n"));
    s["notificationTrigger"] = json!(["entityCreated", "entityDeleted", "attributeUpdated"]);
    subscribe(&api, &s).await;
    let ids: Vec<String> = (0..3).map(|_| uid("Meter")).collect();
    let batch: Vec<Value> = ids
        .iter()
        .map(|i| json!({ "id": i, "type": "Meter", "v": 1 }))
        .collect();
    api.post("/entityOperations/create", &json!(batch))
        .await
        .expect(201);
    rx.wait_ok("/n", 3).await;
    let upd: Vec<Value> = ids
        .iter()
        .map(|i| json!({ "id": i, "type": "Meter", "v": 2 }))
        .collect();
    api.post("/entityOperations/upsert?options=update", &json!(upd))
        .await;
    rx.wait_ok("/n", 6).await;
    api.post("/entityOperations/delete", &json!(ids))
        .await
        .expect(204);
    let all = rx.wait_ok("/n", 9).await;
    for id in &ids {
        let about: Vec<&Received> = all.iter().filter(|n| data0(n)["id"] == *id).collect();
        assert_eq!(about.len(), 3, "created, updated, deleted for {id}");
        // In order, per entity.
        assert!(data0(about[0]).get("deletedAt").is_none());
        assert_eq!(data0(about[1])["v"]["value"], 2);
        assert!(data0(about[2]).get("deletedAt").is_some());
    }
}

#[tokio::test]
async fn q_and_watched_attributes_filter() {
    let api = api();
    let rx = Receiver::start().await;
    let mut s = sub("Tank", &rx.url("/q"));
    s["q"] = json!("level>50");
    subscribe(&api, &s).await;
    let mut w = sub("Tank", &rx.url("/watch"));
    w["watchedAttributes"] = json!(["alarm"]);
    subscribe(&api, &w).await;
    let mut control = sub("Tank", &rx.url("/all"));
    control["notificationTrigger"] = json!(["entityCreated", "entityUpdated"]);
    subscribe(&api, &control).await;

    let id = uid("Tank");
    api.create(&json!({ "id": id, "type": "Tank", "level": 10, "alarm": false }))
        .await;
    for level in [20, 60] {
        api.patch(&format!("/entities/{id}/attrs"), &json!({ "level": level }))
            .await
            .expect(204);
    }
    rx.wait_ok("/all", 3).await;
    let q = rx.wait_ok("/q", 1).await;
    assert_eq!(data0(&q[0])["level"]["value"], 60);
    // alarm only changed at creation so far.
    api.patch(&format!("/entities/{id}/attrs"), &json!({ "alarm": true }))
        .await
        .expect(204);
    rx.wait_ok("/all", 4).await;
    let w = rx.wait_ok("/watch", 2).await;
    assert_eq!(data0(&w[1])["alarm"]["value"], true);
    // The q subscription saw the alarm change too (level is still 60), once per change.
    let q = rx.wait_ok("/q", 2).await;
    assert_eq!(q.len(), 2);
    assert_eq!(rx.ok("/watch").len(), 2, "level changes are not watched");
    // Another type does not match at all.
    api.create(&json!({ "id": uid("Pool"), "type": "Pool", "level": 99, "alarm": true }))
        .await;
    api.create(&json!({ "id": uid("Tank"), "type": "Tank", "level": 1 }))
        .await;
    rx.wait_ok("/all", 5).await;
    assert_eq!(rx.ok("/q").len(), 2);
}

#[tokio::test]
async fn geo_q_filters() {
    let api = api();
    let rx = Receiver::start().await;
    let mut s = sub("Buoy", &rx.url("/near"));
    s["geoQ"] = json!({ "geometry": "Point", "coordinates": [5.37, 43.29], "georel": "near;maxDistance==5000" });
    subscribe(&api, &s).await;
    let mut control = sub("Buoy", &rx.url("/all"));
    control["notificationTrigger"] = json!(["entityCreated"]);
    subscribe(&api, &control).await;
    let marseille = uid("Buoy");
    let nice = uid("Buoy");
    for (id, coords) in [(&nice, [7.26, 43.70]), (&marseille, [5.36, 43.30])] {
        api.create(&json!({ "id": id, "type": "Buoy",
            "location": { "type": "GeoProperty", "value": { "type": "Point", "coordinates": coords } } }))
            .await;
    }
    rx.wait_ok("/all", 2).await;
    let near = rx.wait_ok("/near", 1).await;
    assert_eq!(near.len(), 1);
    assert_eq!(data0(&near[0])["id"], *marseille);
}

#[tokio::test]
async fn throttling_limits_the_rate() {
    let api = api();
    let rx = Receiver::start().await;
    let mut s = sub("Valve", &rx.url("/throttled"));
    s["throttling"] = json!(3600);
    subscribe(&api, &s).await;
    subscribe(&api, &sub("Valve", &rx.url("/all"))).await;
    let id = uid("Valve");
    api.create(&json!({ "id": id, "type": "Valve", "open": 0 }))
        .await;
    for i in 1..4 {
        api.patch(&format!("/entities/{id}/attrs"), &json!({ "open": i }))
            .await
            .expect(204);
    }
    rx.wait_ok("/all", 4).await;
    rx.wait_ok("/throttled", 1).await;
    // Give a straggler every chance to show up, then check there was none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.ok("/throttled").len(), 1);
}

#[tokio::test]
async fn time_interval_notifies_periodically() {
    let api = api();
    let rx = Receiver::start().await;
    let id = uid("Station");
    api.create(&json!({ "id": id, "type": "Station", "temp": 21 }))
        .await;
    let mut s = sub("Station", &rx.url("/tick"));
    s["timeInterval"] = json!(1);
    subscribe(&api, &s).await;
    let n = rx.wait_ok("/tick", 2).await;
    for x in &n {
        assert_eq!(data0(x)["id"], id);
        assert_eq!(data0(x)["temp"]["value"], 21);
    }
}

#[tokio::test]
async fn expiry_and_pause_stop_notifications() {
    let api = api();
    let rx = Receiver::start().await;
    let mut expiring = sub("Lamp", &rx.url("/expiring"));
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    expiring["expiresAt"] = json!(soon.to_rfc3339());
    let expiring_id = subscribe(&api, &expiring).await;
    let paused_id = subscribe(&api, &sub("Lamp", &rx.url("/paused"))).await;
    subscribe(&api, &sub("Lamp", &rx.url("/all"))).await;

    let id = uid("Lamp");
    api.create(&json!({ "id": id, "type": "Lamp", "on": false }))
        .await;
    rx.wait_ok("/expiring", 1).await;
    rx.wait_ok("/paused", 1).await;

    api.patch(
        &format!("/subscriptions/{paused_id}"),
        &json!({ "isActive": false }),
    )
    .await
    .expect(204);
    wait_subscription(&api, &expiring_id, |s| s["status"] == "expired").await;
    api.patch(&format!("/entities/{id}/attrs"), &json!({ "on": true }))
        .await
        .expect(204);
    rx.wait_ok("/all", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.ok("/expiring").len(),
        1,
        "expired: no more notifications"
    );
    assert_eq!(rx.ok("/paused").len(), 1, "paused: no notification");

    // Resume: notifications come back.
    api.patch(
        &format!("/subscriptions/{paused_id}"),
        &json!({ "isActive": true }),
    )
    .await
    .expect(204);
    api.patch(&format!("/entities/{id}/attrs"), &json!({ "on": false }))
        .await
        .expect(204);
    let n = rx.wait_ok("/paused", 2).await;
    assert_eq!(data0(&n[1])["on"]["value"], false);
    // Renewing an expired subscription makes it active again.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    api.patch(
        &format!("/subscriptions/{expiring_id}"),
        &json!({ "expiresAt": later.to_rfc3339() }),
    )
    .await
    .expect(204);
    assert_eq!(
        api.get(&format!("/subscriptions/{expiring_id}"))
            .await
            .json()["status"],
        "active"
    );
}

#[tokio::test]
async fn formats_attributes_and_json_ld() {
    let api = api();
    let rx = Receiver::start().await;
    let mk = |path: &str, notification: Value| {
        let mut s = sub("WaterObserved", &rx.url(path));
        let mut n = notification;
        n["endpoint"]["uri"] = json!(rx.url(path));
        s["notification"] = n;
        s
    };
    for (path, n) in [
        (
            "/normalized",
            json!({ "format": "normalized", "endpoint": {} }),
        ),
        ("/kv", json!({ "format": "keyValues", "endpoint": {} })),
        ("/concise", json!({ "format": "concise", "endpoint": {} })),
        (
            "/attrs",
            json!({ "attributes": ["flow"], "sysAttrs": true, "endpoint": {} }),
        ),
        (
            "/ld",
            json!({ "endpoint": { "accept": "application/ld+json" } }),
        ),
    ] {
        let body = mk(path, n);
        api.json_linked(Method::POST, "/subscriptions", &body, SDM_ENVIRONMENT)
            .await
            .expect(201);
    }
    let id = uid("WaterObserved");
    api.json_linked(
        Method::POST,
        "/entities",
        &json!({ "id": id, "type": "WaterObserved",
                 "flow": { "type": "Property", "value": 12, "unitCode": "G51" },
                 "refDevice": { "type": "Relationship", "object": "urn:ngsi-ld:Device:d1" } }),
        SDM_ENVIRONMENT,
    )
    .await
    .expect(201);
    let n = rx.wait_ok("/normalized", 1).await;
    assert_eq!(data0(&n[0])["type"], "WaterObserved");
    assert_eq!(
        data0(&n[0])["flow"],
        json!({ "type": "Property", "value": 12, "unitCode": "G51" })
    );
    assert!(n[0].headers["link"].contains(SDM_ENVIRONMENT));
    let n = rx.wait_ok("/kv", 1).await;
    assert_eq!(data0(&n[0])["flow"], 12);
    assert_eq!(data0(&n[0])["refDevice"], "urn:ngsi-ld:Device:d1");
    let n = rx.wait_ok("/concise", 1).await;
    assert_eq!(
        data0(&n[0])["flow"],
        json!({ "value": 12, "unitCode": "G51" })
    );
    assert_eq!(
        data0(&n[0])["refDevice"],
        json!({ "object": "urn:ngsi-ld:Device:d1" })
    );
    let n = rx.wait_ok("/attrs", 1).await;
    assert!(data0(&n[0]).get("refDevice").is_none());
    assert_eq!(data0(&n[0])["flow"]["value"], 12);
    assert!(data0(&n[0]).get("createdAt").is_some(), "sysAttrs");
    let n = rx.wait_ok("/ld", 1).await;
    assert!(n[0].headers["content-type"].starts_with("application/ld+json"));
    assert!(!n[0].headers.contains_key("link"));
    assert_eq!(data0(&n[0])["@context"], SDM_ENVIRONMENT);
}

#[tokio::test]
async fn show_changes_carries_previous_values() {
    let api = api();
    let rx = Receiver::start().await;
    let mut s = sub("Gate", &rx.url("/changes"));
    s["notification"]["showChanges"] = json!(true);
    s["notificationTrigger"] = json!(["attributeUpdated", "attributeDeleted"]);
    subscribe(&api, &s).await;
    let id = uid("Gate");
    api.create(&json!({ "id": id, "type": "Gate", "state": "closed",
        "owner": { "type": "Relationship", "object": "urn:ngsi-ld:Person:a" } }))
        .await;
    api.patch(
        &format!("/entities/{id}/attrs"),
        &json!({ "state": "open", "owner": { "type": "Relationship", "object": "urn:ngsi-ld:Person:b" } }),
    )
    .await
    .expect(204);
    let n = rx.wait_ok("/changes", 1).await;
    let e = data0(&n[0]);
    assert_eq!(e["state"]["value"], "open");
    assert_eq!(e["state"]["previousValue"], "closed");
    assert_eq!(e["owner"]["previousObject"], "urn:ngsi-ld:Person:a");
    api.delete(&format!("/entities/{id}/attrs/state"))
        .await
        .expect(204);
    let n = rx.wait_ok("/changes", 2).await;
    let e = data0(&n[1]);
    assert_eq!(e["state"]["value"], "urn:ngsi-ld:null");
    assert_eq!(e["state"]["previousValue"], "open");
    assert!(
        e["owner"].get("previousObject").is_none(),
        "unchanged: no previous value"
    );
}

#[tokio::test]
async fn receiver_info_headers_are_sent() {
    let api = api();
    let rx = Receiver::start().await;
    let mut s = sub("Sensor", &rx.url("/h"));
    s["notification"]["endpoint"]["receiverInfo"] = json!([{ "key": "X-Auth-Token", "value": "s3cret" }, { "key": "Fiware-Service", "value": "city" }]);
    subscribe(&api, &s).await;
    api.create(&json!({ "id": uid("Sensor"), "type": "Sensor", "v": 1 }))
        .await;
    let n = rx.wait_ok("/h", 1).await;
    assert_eq!(n[0].headers["x-auth-token"], "s3cret");
    assert_eq!(n[0].headers["fiware-service"], "city");
}

#[tokio::test]
async fn failures_are_counted_retried_and_recovered() {
    let api = api();
    let rx = Receiver::start().await;
    rx.set_status(500);
    let sid = subscribe(&api, &sub("Boiler", &rx.url("/flaky"))).await;
    let id = uid("Boiler");
    api.create(&json!({ "id": id, "type": "Boiler", "t": 80 }))
        .await;
    rx.wait_any("/flaky", 2).await; // the first attempt and at least one retry
    let s = wait_subscription(&api, &sid, |s| {
        s["notification"]["timesFailed"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(s["notification"]["status"], "failed");
    assert_datetime(&s["notification"]["lastFailure"]);
    assert_datetime(&s["notification"]["lastNotification"]);
    assert!(s["notification"].get("lastSuccess").is_none());

    // The endpoint recovers: the queued notification gets through.
    rx.set_status(200);
    let n = rx.wait_ok("/flaky", 1).await;
    assert_eq!(data0(&n[0])["t"]["value"], 80);
    let s = wait_subscription(&api, &sid, |s| s["notification"]["status"] == "ok").await;
    assert_datetime(&s["notification"]["lastSuccess"]);
    let sent = s["notification"]["timesSent"].as_u64().unwrap_or(0);
    let failed = s["notification"]["timesFailed"].as_u64().unwrap_or(0);
    assert!(
        sent > failed && failed >= 2,
        "timesSent {sent} timesFailed {failed}"
    );

    // A receiver that is not listening at all is a failure too, and so is recovering.
    rx.stop();
    api.patch(&format!("/entities/{id}/attrs"), &json!({ "t": 81 }))
        .await
        .expect(204);
    wait_subscription(&api, &sid, |s| {
        s["notification"]["timesFailed"].as_u64() > Some(failed)
    })
    .await;
    let back = Receiver::start_at(rx.addr).await;
    let n = back.wait_ok("/flaky", 1).await;
    assert_eq!(data0(&n[0])["t"]["value"], 81);
}

#[tokio::test]
async fn a_dead_endpoint_does_not_delay_others() {
    let api = api();
    let dead = Receiver::start().await;
    dead.set_status(503);
    let live = Receiver::start().await;
    subscribe(&api, &sub("Light", &dead.url("/dead"))).await;
    subscribe(&api, &sub("Light", &live.url("/live"))).await;
    let ids: Vec<String> = (0..20).map(|_| uid("Light")).collect();
    for id in &ids {
        api.create(&json!({ "id": id, "type": "Light", "lux": 1 }))
            .await;
    }
    live.wait_ok("/live", 20).await;
}

#[tokio::test]
async fn pending_notifications_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [
        "--notify-retry-base-ms",
        "100",
        "--notify-retry-max-ms",
        "300",
        "--notify-max-attempts",
        "1000",
    ];
    let mut server = TestServer::start_in(dir.path(), &args);
    let api = server.api();
    let rx = Receiver::start().await;
    rx.set_status(500);
    subscribe(&api, &sub("Pipe", &rx.url("/durable"))).await;
    let id = uid("Pipe");
    api.create(&json!({ "id": id, "type": "Pipe", "pressure": 7 }))
        .await;
    // Acknowledged, attempted, failed: the notification is pending. Kill the broker.
    rx.wait_any("/durable", 1).await;
    server.kill9();
    rx.set_status(200);
    server.restart();
    let api = Api::new(&server.base_url, api.tenant.clone());
    let n = rx.wait_ok("/durable", 1).await;
    assert_eq!(data0(&n[0])["id"], id);
    assert_eq!(data0(&n[0])["pressure"]["value"], 7);
    // The subscription itself survived as well, and still matches.
    api.patch(&format!("/entities/{id}/attrs"), &json!({ "pressure": 8 }))
        .await
        .expect(204);
    let n = rx.wait_ok("/durable", 2).await;
    assert_eq!(data0(n.last().expect("last"))["pressure"]["value"], 8);
}

#[tokio::test]
async fn graceful_shutdown_finishes_deliveries_in_flight() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_in(dir.path(), &[]);
    let api = server.api();
    let rx = Receiver::start().await;
    rx.set_delay(1500);
    subscribe(&api, &sub("Crane", &rx.url("/slow"))).await;
    let id = uid("Crane");
    api.create(&json!({ "id": id, "type": "Crane", "load": 3 }))
        .await;
    // The notification is in flight (arrived, not answered yet): stop the broker.
    rx.wait_any("/slow", 1).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate(Duration::from_secs(20));
        (server, status)
    })
    .await
    .expect("join");
    let (mut server, status) = status;
    let status = status.expect("the broker stopped on SIGTERM within 20 s");
    assert!(status.success(), "clean exit, got {status:?}");
    // It waited for the answer: the delivery was completed, and recorded as done, so
    // a restart sends nothing again.
    assert_eq!(rx.ok("/slow").len(), 1);
    rx.set_delay(0);
    server.restart();
    let api = Api::new(&server.base_url, api.tenant.clone());
    api.patch(&format!("/entities/{id}/attrs"), &json!({ "load": 4 }))
        .await
        .expect(204);
    let n = rx.wait_ok("/slow", 2).await;
    assert_eq!(n.len(), 2, "no duplicate of the first notification");
    assert_eq!(data0(&n[1])["load"]["value"], 4);
}

#[tokio::test]
async fn deny_private_refuses_loopback_targets() {
    let server = TestServer::start(&["--notify-deny-private", "--notify-max-attempts", "1"]);
    let api = server.api();
    let rx = Receiver::start().await;
    let sid = subscribe(&api, &sub("Door", &rx.url("/ssrf"))).await;
    api.create(&json!({ "id": uid("Door"), "type": "Door", "open": true }))
        .await;
    wait_subscription(&api, &sid, |s| {
        s["notification"]["timesFailed"].as_u64() >= Some(1)
    })
    .await;
    assert!(
        rx.on("").is_empty(),
        "nothing may reach a loopback receiver"
    );
}

// ---------------------------------------------------------------------------------
// MQTT, against a real Mosquitto started here.

struct Mosquitto {
    child: std::process::Child,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto_binary() -> Option<String> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
}

/// Starts Mosquitto on a free port. Without it: a failure in CI, a loud skip locally.
fn start_mosquitto() -> Option<Mosquitto> {
    let Some(bin) = mosquitto_binary() else {
        let msg = "mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)";
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("{msg}: the MQTT notification test cannot run in CI without it");
        }
        eprintln!("\n*** WARNING: SKIPPING the MQTT notification test: {msg} ***\n");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = std::process::Command::new(bin)
        .args(["-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Mosquitto { child, port })
}

#[tokio::test]
async fn mqtt_notifications_reach_mosquitto() {
    let Some(mosquitto) = start_mosquitto() else {
        return;
    };
    // A subscriber on the topic, through rumqttc as well.
    let mut opts = rumqttc::MqttOptions::new(
        format!("it-{}", uuid::Uuid::new_v4().simple()),
        "127.0.0.1",
        mosquitto.port,
    );
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 10);
    let topic = format!("ngsi/{}", uuid::Uuid::new_v4().simple());
    client
        .subscribe(&topic, rumqttc::QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut subscribed = Some(subscribed_tx);
        while let Ok(ev) = events.poll().await {
            match ev {
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    let _ = tx.send(serde_json::from_slice(&p.payload).unwrap_or(Value::Null));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(WAIT, subscribed_rx)
        .await
        .expect("MQTT SUBACK in time")
        .expect("subscriber alive");

    let api = api();
    let mut s = sub(
        "Beacon",
        &format!("mqtt://127.0.0.1:{}/{topic}", mosquitto.port),
    );
    s["notification"]["endpoint"]["receiverInfo"] =
        json!([{ "key": "X-Site", "value": "calanques" }]);
    s["notification"]["endpoint"]["notifierInfo"] = json!([
        { "key": "MQTT-QoS", "value": "1" },
        { "key": "MQTT-Version", "value": "mqtt3.1.1" }
    ]);
    subscribe(&api, &s).await;
    let id = uid("Beacon");
    api.create(&json!({ "id": id, "type": "Beacon", "battery": 0.9 }))
        .await;
    let msg = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an MQTT notification in time")
        .expect("a message");
    assert_eq!(msg["body"]["type"], "Notification");
    assert_eq!(msg["body"]["data"][0]["id"], id);
    assert_eq!(msg["body"]["data"][0]["battery"]["value"], 0.9);
    assert_eq!(msg["metadata"]["X-Site"], "calanques");
    assert!(
        msg["metadata"].get("MQTT-QoS").is_none(),
        "notifierInfo configures the binding, it is not metadata"
    );
    assert!(msg["metadata"]["Content-Type"]
        .as_str()
        .is_some_and(|c| c.starts_with("application/json")));
}
