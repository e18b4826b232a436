//! MQTT notifications (clause 7.3 binding): the Notification is published, wrapped as
//! `{"metadata": {headers}, "body": notification}`, on the topic named by the endpoint
//! URI's path (`mqtt://host:port/topic`), with QoS 1 unless notifierInfo (or
//! receiverInfo) says `MQTT-QoS`. One connection per notification: simple and robust; an MQTT broker is
//! usually local and connections are cheap.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use serde_json::{json, Map, Value};

use super::http::Prepared;

pub async fn publish(uri: &str, p: &Prepared, timeout: Duration) -> Result<(), String> {
    tokio::time::timeout(timeout, publish_inner(uri, p))
        .await
        .map_err(|_| format!("{uri}: MQTT publish timed out after {timeout:?}"))?
}

async fn publish_inner(uri: &str, p: &Prepared) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|e| format!("{uri}: {e}"))?;
    let tls = url.scheme() == "mqtts";
    let host = url.host_str().unwrap_or("localhost").to_string();
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let topic = url.path().trim_start_matches('/').to_string();
    if topic.is_empty() {
        return Err(format!("{uri}: no topic in the MQTT endpoint URI"));
    }
    let client_id = format!("calanque-{}", uuid::Uuid::new_v4().simple());
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(10));
    if !url.username().is_empty() {
        opts.set_credentials(url.username(), url.password().unwrap_or(""));
    }
    if tls {
        opts.set_transport(Transport::tls_with_default_config());
    }
    let mut qos = QoS::AtLeastOnce;
    let mut metadata = Map::new();
    metadata.insert("Content-Type".into(), json!(p.content_type));
    if let Some(link) = &p.link {
        metadata.insert("Link".into(), json!(link));
    }
    let binding =
        |k: &str| k.eq_ignore_ascii_case("MQTT-QoS") || k.eq_ignore_ascii_case("MQTT-Version");
    // Binding settings come from notifierInfo (receiverInfo is accepted too); the other
    // receiverInfo entries travel as metadata.
    for (k, v) in p.headers.iter().chain(&p.notifier) {
        if k.eq_ignore_ascii_case("MQTT-QoS") {
            qos = match v.as_str() {
                "0" => QoS::AtMostOnce,
                "2" => QoS::ExactlyOnce,
                _ => QoS::AtLeastOnce,
            };
        }
    }
    for (k, v) in &p.headers {
        if !binding(k) {
            metadata.insert(k.clone(), json!(v));
        }
    }
    let body: Value = serde_json::from_str(&p.body).unwrap_or(Value::Null);
    let message = json!({ "metadata": metadata, "body": body }).to_string();
    let (client, mut events) = AsyncClient::new(opts, 10);
    client
        .publish(topic, qos, false, message.into_bytes())
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) | Ok(Event::Incoming(Packet::PubComp(_))) => {
                break
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) if qos == QoS::AtMostOnce => break,
            Ok(_) => {}
            Err(e) => return Err(format!("{uri}: {e}")),
        }
    }
    let _ = client.disconnect().await;
    // Let the disconnect go out; errors here do not matter.
    let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
    Ok(())
}
