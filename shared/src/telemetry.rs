//! Logging set-up: JSON lines on Lambda (CloudWatch parses them), compact text locally.
//! `RUST_LOG` filters, defaulting to `info`.

use tracing_subscriber::EnvFilter;

/// Logging, and the one TLS crypto provider ([`crate::install_crypto_provider`]):
/// what every binary does first.
pub fn init() {
    crate::install_crypto_provider();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // `try_init`: a second call (tests, the local API) keeps the first subscriber.
    let _ = if on_lambda {
        builder.json().with_current_span(true).without_time().try_init()
    } else {
        builder.compact().try_init()
    };
}
