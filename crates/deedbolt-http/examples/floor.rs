//! The floor the load benchmark compares the token endpoint against: a bare axum server
//! whose `POST /token` signs a fresh access token (ES256 or EdDSA, new `jti` and `iat`
//! each time) with deedbolt's signing code and answers with JSON, and does nothing else
//! (no client authentication, rate limit, audit record or middleware).
//!
//! `bench/load.py` builds and runs it next to the server, so that a figure measured on a
//! shared, variable machine can be read as a ratio to what any Rust server on the same
//! machine, at the same moment, can do:
//!
//! ```sh
//! cargo run --release -p deedbolt-http --example floor -- 127.0.0.1:9999 ES256
//! ```

use std::sync::Arc;

use axum::routing::post;
use axum::{Json, Router};
use deedbolt_core::clock::{Clock as _, SystemClock};
use deedbolt_core::ids::TokenId;
use deedbolt_core::jose::{SigningAlg, SigningKey};
use serde_json::json;

/// The same allocator as the `deedbolt` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9999".into());
    let alg: SigningAlg = args
        .next()
        .unwrap_or_else(|| "ES256".into())
        .parse()
        .expect("ES256, EdDSA or RS256");
    let (key, _) = SigningKey::generate(alg).expect("key");
    let key = Arc::new(key);
    let app = Router::new().route(
        "/token",
        post(move || {
            let key = key.clone();
            async move {
                let now = SystemClock.now().0;
                // A fresh id the way the token endpoint makes one.
                let jti = TokenId::generate().expect("random");
                let claims = json!({
                    "iss": "http://127.0.0.1", "sub": "bench", "aud": "http://127.0.0.1/api",
                    "iat": now, "exp": now + 600, "jti": jti,
                    "client_id": "bench", "scope": "property:read",
                });
                let token = key.sign_jwt("at+jwt", &claims).expect("sign");
                Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 600}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}
