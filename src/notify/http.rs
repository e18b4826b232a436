//! HTTP notifications (clause 7.2 binding): a POST of the Notification to the endpoint,
//! and the SSRF guard shared with MQTT.

use std::net::IpAddr;
use std::time::Duration;

/// A notification ready to send: body, media type, context link and extra headers.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub body: String,
    pub content_type: &'static str,
    /// The Link header (application/json notifications).
    pub link: Option<String>,
    /// receiverInfo and NGSILD-Tenant.
    pub headers: Vec<(String, String)>,
    /// notifierInfo: settings of the binding (`MQTT-QoS`, `MQTT-Version`).
    pub notifier: Vec<(String, String)>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(16)
        // Receivers that compare header names case-sensitively exist (the ETSI suite's
        // mock among them): send them as written (`Link`, receiverInfo keys).
        .http1_title_case_headers()
        .build()
        .unwrap_or_default()
}

/// POSTs a notification; any 2xx is a success.
pub async fn send(
    client: &reqwest::Client,
    uri: &str,
    p: &Prepared,
    timeout: Duration,
) -> Result<(), String> {
    let mut req = client
        .post(uri)
        .timeout(timeout)
        .header("Content-Type", p.content_type)
        .body(p.body.clone());
    if let Some(link) = &p.link {
        req = req.header("Link", link);
    }
    for (k, v) in &p.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(|e| format!("{uri}: {e}"))?;
    let status = resp.status();
    // Drain the body so the connection can be reused.
    let _ = resp.bytes().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{uri} answered {status}"))
    }
}

/// True for addresses an SSRF guard refuses: loopback, private, link-local, unique
/// local, unspecified, CGNAT and the like.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Refuses a target whose host resolves to a private address (when the guard is on).
pub async fn guard(uri: &str, deny_private: bool) -> Result<(), String> {
    if !deny_private {
        return Ok(());
    }
    let url = url::Url::parse(uri).map_err(|e| format!("{uri}: {e}"))?;
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(match url.scheme() {
        "mqtts" => 8883,
        _ => 1883,
    });
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("{uri}: cannot resolve {host}: {e}"))?
            .map(|a| a.ip())
            .collect(),
    };
    if let Some(ip) = addrs.into_iter().find(|ip| is_private(*ip)) {
        return Err(format!(
            "{uri}: {ip} is a loopback or private address and --notify-deny-private is set"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "100.64.0.1",
        ] {
            assert!(
                is_private(ip.parse().unwrap_or_else(|e| panic!("{e}"))),
                "{ip}"
            );
        }
        for ip in ["8.8.8.8", "2001:4860::8888", "172.32.0.1"] {
            assert!(
                !is_private(ip.parse().unwrap_or_else(|e| panic!("{e}"))),
                "{ip}"
            );
        }
    }
}
