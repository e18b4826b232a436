//! Limit: a trivial actix-web server in this process, loaded by the same
//! driver as the broker. GET returns a small JSON object; POST parses a
//! ~1 KB JSON entity (the same bodies the create scenario sends) and answers
//! 201, which is the least a create endpoint must do.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use futures_util::future::LocalBoxFuture;

use crate::bench_context::BenchContext;
use crate::figures::Figure;
use crate::scenarios::{serialize, Scenario};

pub struct TrivialHttp;

impl Scenario for TrivialHttp {
    fn key(&self) -> &'static str {
        "limit_http"
    }

    fn summary(&self) -> &'static str {
        "limit: trivial actix-web GET (small JSON) and POST (parse a ~1 KB JSON body, 201) in this process"
    }

    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>> {
        Box::pin(run(bench))
    }
}

const SMALL_JSON: &str = r#"{"id":"urn:ngsi-ld:Thing:trivial","type":"Thing","name":{"type":"Property","value":"trivial"}}"#;

async fn get_handler() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(SMALL_JSON)
}

async fn post_handler(body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => HttpResponse::Created()
            .insert_header(("Location", "/trivial/urn:ngsi-ld:Thing:trivial"))
            .finish(),
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}

struct TrivialServer {
    handle: ServerHandle,
    thread: JoinHandle<()>,
    port: u16,
}

/// Runs the server on its own actix system thread (actix-web needs one);
/// worker count is actix's default, as for the broker.
fn start_trivial_server() -> TrivialServer {
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| {
                App::new()
                    .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                    .route("/trivial", web::get().to(get_handler))
                    .route("/trivial", web::post().to(post_handler))
            })
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("cannot bind the trivial server to a loopback port");
            let port = server.addrs()[0].port();
            let server = server.run();
            sender
                .send((server.handle(), port))
                .expect("the bench stopped waiting for the trivial server");
            server.await.expect("the trivial server failed");
        });
    });
    let (handle, port) = receiver
        .recv()
        .expect("the trivial server thread died while starting");
    TrivialServer {
        handle,
        thread,
        port,
    }
}

impl TrivialServer {
    async fn stop(self) {
        self.handle.stop(true).await;
        self.thread
            .join()
            .expect("the trivial server thread panicked");
    }
}

async fn run(bench: &mut BenchContext) -> Vec<Figure> {
    let server = start_trivial_server();
    let url = format!("http://127.0.0.1:{}/trivial", server.port);
    let requests = bench.options.requests;

    let get_url = url.clone();
    let get = bench
        .load(
            requests,
            &[200],
            Arc::new(move |client, _| client.get(&get_url)),
        )
        .await;

    let territory = bench.territory();
    let distinct = territory.entity_count().min(requests as u64).max(1);
    let bodies: Arc<Vec<_>> = Arc::new(
        (0..distinct)
            .map(|index| serialize(&territory.entity(index)))
            .collect(),
    );
    let post = bench
        .load(
            requests,
            &[201],
            Arc::new(move |client, index| {
                client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(bodies[index % bodies.len()].clone())
            }),
        )
        .await;

    server.stop().await;
    vec![
        Figure::from_load(
            "limit.http_get",
            "Limit: trivial actix-web GET",
            "req/s",
            1,
            &get,
        ),
        Figure::from_load(
            "limit.http_post",
            "Limit: trivial actix-web POST (1 KB JSON)",
            "req/s",
            1,
            &post,
        ),
    ]
}
