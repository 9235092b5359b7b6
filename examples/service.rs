//! A small HTTP service over `AsyncKvs` (axum): users with ids from `seq`, looked up by id and
//! by city. It runs on a redb file by default and on an etcd cluster by changing its URL.
//!
//! ```sh
//! cargo run --example service                 # redb:service.redb, on 127.0.0.1:3000
//! KVS_URL=etcd://127.0.0.1:23791/app-service cargo run --example service
//!
//! curl -s -X POST localhost:3000/users -H 'content-type: application/json' \
//!      -d '{"name": "Ann", "city": "Oslo"}'      # {"id":1,"name":"Ann","city":"Oslo"}
//! curl -s localhost:3000/users/1                 # {"id":1,"name":"Ann","city":"Oslo"}
//! curl -s 'localhost:3000/users?city=Oslo'       # [{"id":1,"name":"Ann","city":"Oslo"}]
//! curl -s 'localhost:3000/users?limit=20'        # the 20 newest users, newest first
//! ```
//!
//! `KVS_SERVICE_ADDR` moves the listener (`127.0.0.1:0` picks a free port, which it prints).
//! `tests/service.rs` runs this file's `app` and calls each route over HTTP.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{StreamExt, TryStreamExt};
use kvs::{AsyncKvs, Table};
use serde::{Deserialize, Serialize};

/// A user, as stored and as served.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "users")]
pub struct User {
    /// From `seq("users", 1)`.
    #[kvs(key)]
    pub id: u64,
    /// The user's name.
    pub name: String,
    /// The city, indexed for `GET /users?city=`.
    #[kvs(index)]
    pub city: String,
}

/// The body of `POST /users`.
#[derive(Deserialize)]
pub struct NewUser {
    name: String,
    city: String,
}

/// The query of `GET /users`.
#[derive(Deserialize)]
pub struct Filter {
    city: Option<String>,
    /// How many of the newest users to answer without `city`: 50 unless given, at most 1,000.
    limit: Option<usize>,
}

/// The service's routes, over one shared handle.
pub fn app(kvs: AsyncKvs) -> Router {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(show))
        .with_state(kvs)
}

/// `POST /users`: a new user, its id from `seq`.
async fn create(
    State(kvs): State<AsyncKvs>,
    Json(new): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), Failure> {
    let user = User {
        id: kvs.seq("users", 1).await?,
        name: new.name,
        city: new.city,
    };
    kvs.put(&user).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// `GET /users/{id}`.
async fn show(State(kvs): State<AsyncKvs>, Path(id): Path<u64>) -> Result<Json<User>, Failure> {
    kvs.get::<User>(&id)
        .await?
        .map(Json)
        .ok_or(Failure::NotFound(id))
}

/// `GET /users?city=Oslo`: the users of a city, by the index. Without `city`, the newest
/// users first (ids come from `seq`), `limit` of them: a stream from the end of the table,
/// which reads a page of them, not the table.
async fn list(
    State(kvs): State<AsyncKvs>,
    Query(filter): Query<Filter>,
) -> Result<Json<Vec<User>>, Failure> {
    let users = if let Some(city) = filter.city {
        kvs.index::<User>(UserField::City, city.as_str()).await?
    } else {
        let limit = filter.limit.unwrap_or(50).min(1000);
        kvs.stream_rev::<User>(..).take(limit).try_collect().await?
    };
    Ok(Json(users))
}

/// Why a request failed, as an HTTP answer.
pub enum Failure {
    /// No user has this id: 404.
    NotFound(u64),
    /// The store failed: 409 for a conflict, 503 for an unreachable cluster, else 500.
    Store(kvs::Error),
}

impl From<kvs::Error> for Failure {
    fn from(e: kvs::Error) -> Self {
        Failure::Store(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Failure::NotFound(id) => (StatusCode::NOT_FOUND, format!("no user {id}")),
            Failure::Store(e) => {
                // The details stay in the service's log: they can name files, users and key
                // prefixes that a client has no business seeing.
                eprintln!("store error: {e}");
                match e {
                    kvs::Error::Duplicate { .. } | kvs::Error::Conflict { .. } => {
                        (StatusCode::CONFLICT, "conflict: try again".to_owned())
                    }
                    kvs::Error::Unavailable { .. } => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the store is unavailable".to_owned(),
                    ),
                    _ => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error".to_owned(),
                    ),
                }
            }
        };
        (status, message).into_response()
    }
}

#[allow(dead_code)] // tests/service.rs takes `app` alone
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var(kvs::KVS_URL).unwrap_or_else(|_| "redb:service.redb".to_owned());
    let kvs = AsyncKvs::open(&url).await?;
    let addr = std::env::var("KVS_SERVICE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving {url} on http://{}", listener.local_addr()?);
    axum::serve(listener, app(kvs)).await?;
    Ok(())
}
