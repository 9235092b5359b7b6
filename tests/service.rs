//! The example service (`examples/service.rs`) answers its routes: it is served on a free
//! port of loopback, over `mem:`, and called over HTTP/1.1 as curl would.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../examples/service.rs"]
#[allow(dead_code, unreachable_pub)]
mod service;

/// Sends one request and returns the status code and the body.
async fn call(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let (_, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, body.to_owned())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

#[test]
fn the_example_service_answers_its_routes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let kvs = kvs::AsyncKvs::open("mem:").await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, service::app(kvs)).await });

        for (name, city) in [("Ann", "Oslo"), ("Bob", "Bergen"), ("Cid", "Oslo")] {
            let (status, body) = call(
                addr,
                "POST",
                "/users",
                &format!(r#"{{"name": "{name}", "city": "{city}"}}"#),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(json(&body)["name"], name);
        }
        let (status, body) = call(addr, "GET", "/users/2", "").await;
        assert_eq!(status, 200);
        assert_eq!(
            json(&body),
            serde_json::json!({"id": 2, "name": "Bob", "city": "Bergen"})
        );
        // The users' names in a list's answer, in its order.
        let names = |body: &str| -> Vec<String> {
            json(body)
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let (status, body) = call(addr, "GET", "/users?city=Oslo", "").await;
        assert_eq!(status, 200);
        assert_eq!(names(&body), ["Ann", "Cid"]);
        // Without a city: the newest first, `limit` of them.
        let (status, body) = call(addr, "GET", "/users", "").await;
        assert_eq!(
            (status, names(&body)),
            (200, vec!["Cid".into(), "Bob".into(), "Ann".into()])
        );
        let (status, body) = call(addr, "GET", "/users?limit=2", "").await;
        assert_eq!(
            (status, names(&body)),
            (200, vec!["Cid".into(), "Bob".into()])
        );
        let (status, _) = call(addr, "GET", "/users/99", "").await;
        assert_eq!(status, 404);
        let (status, _) = call(addr, "POST", "/users", "not json").await;
        assert!((400..500).contains(&status), "{status}");
    });
}
