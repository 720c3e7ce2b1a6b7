//! What verifying a token costs the local API per request, on one core: the
//! authorizer's whole check (header, RS256 signature by kid, iss, aud/client_id,
//! exp/nbf/iat, claims rendered as strings). `make bench` runs it for its report.
//!
//!   cargo run --profile local -p rushcart-local-api --example verify_cost [N]

use std::time::Instant;

use rushcart::ids::UserId;
use rushcart_local_api::issuer::LocalIssuer;

fn main() -> anyhow::Result<()> {
    rushcart::install_crypto_provider();
    let rounds: u32 = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(20_000);
    let issuer = LocalIssuer::generate("http://127.0.0.1:3000/_local")?;
    let header = format!("Bearer {}", issuer.mint(UserId::new(42)?, true)?);
    for _ in 0..rounds / 10 {
        issuer.verify(Some(&header)).map_err(anyhow::Error::msg)?;
    }
    let started = Instant::now();
    for _ in 0..rounds {
        issuer.verify(Some(&header)).map_err(anyhow::Error::msg)?;
    }
    let per = started.elapsed() / rounds;
    println!("{{\"verifications\": {rounds}, \"microseconds_each\": {:.1}}}", per.as_nanos() as f64 / 1000.0);
    Ok(())
}
