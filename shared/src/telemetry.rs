//! Logging set-up: JSON lines on Lambda (CloudWatch parses them) and wherever the output
//! is a file (`make run`'s and the drill's logs: one grep or `jq` finds a request by
//! its id), readable text on a terminal, and never ANSI colour codes in a file. The
//! template's `LoggingConfig` decides on Lambda: `AWS_LAMBDA_LOG_FORMAT` (`JSON` or
//! `Text`, which also overrides the default locally) and `AWS_LAMBDA_LOG_LEVEL`; else
//! `RUST_LOG` filters, defaulting to `info`. A filter is a level and levels per target
//! (`warn,rushcart=debug`): `filter::Targets`, which needs no regex engine.

use std::io::IsTerminal as _;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How a process logs, decided from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub json: bool,
    pub ansi: bool,
    /// A level, and levels per target: `info`, `warn,rushcart=debug`.
    pub filter: String,
}

impl LogSettings {
    /// From the variables `var` reads and whether the output is a terminal.
    pub fn from_env(var: impl Fn(&str) -> Option<String>, terminal: bool) -> LogSettings {
        let on_lambda = var("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let json = match var("AWS_LAMBDA_LOG_FORMAT").as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("json") => true,
            Some("text") => false,
            _ => on_lambda || !terminal,
        };
        // Lambda's level names (TRACE … FATAL) read as tracing's; RUST_LOG may say more.
        let filter = match var("AWS_LAMBDA_LOG_LEVEL").map(|level| level.to_ascii_lowercase()) {
            Some(level) if level == "fatal" => "error".to_owned(),
            Some(level) if !level.is_empty() => level,
            _ => var("RUST_LOG").filter(|f| !f.is_empty()).unwrap_or_else(|| "info".to_owned()),
        };
        LogSettings { json, ansi: terminal && !json, filter }
    }
}

/// Logging, and the one TLS crypto provider ([`crate::install_crypto_provider`]):
/// what every binary does first.
pub fn init() {
    init_writing_to(std::io::stdout, std::io::stdout().is_terminal());
}

/// [`init`], with the lines going to `writer` (a `terminal` or not, which decides the
/// format as for stdout): for a process that times the functions in-process and must
/// pay for their logging without printing it.
pub fn init_writing_to<W>(writer: W, terminal: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    crate::install_crypto_provider();
    let settings = LogSettings::from_env(|name| std::env::var(name).ok(), terminal);
    let filter = settings.targets();
    let format = tracing_subscriber::fmt::layer().with_target(false).with_ansi(settings.ansi).with_writer(writer);
    // `try_init`: a second call (tests, the local API) keeps the first subscriber. A
    // JSON line carries the request span once (`span`): it is the only span there is
    // (tests/tests/events.rs records every span the handlers open), so the list of
    // enclosing spans would repeat it on every line.
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if settings.json {
        registry.with(format.json().with_current_span(true).with_span_list(false)).try_init()
    } else {
        registry.with(format.compact()).try_init()
    };
}

impl LogSettings {
    /// The filter, or `info` when it does not parse.
    pub fn targets(&self) -> Targets {
        self.filter.parse().unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)], terminal: bool) -> LogSettings {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LogSettings::from_env(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()), terminal)
    }

    #[test]
    fn lambda_logs_json_at_its_configured_level() {
        let on_lambda = settings(&[("AWS_LAMBDA_FUNCTION_NAME", "pay-order"), ("AWS_LAMBDA_LOG_LEVEL", "WARN")], false);
        assert_eq!(on_lambda, LogSettings { json: true, ansi: false, filter: "warn".into() });
        let text = settings(&[("AWS_LAMBDA_FUNCTION_NAME", "f"), ("AWS_LAMBDA_LOG_FORMAT", "Text")], false);
        assert!(!text.json && !text.ansi);
        assert_eq!(settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")], false).filter, "error");
    }

    #[test]
    fn locally_a_terminal_gets_coloured_text_and_a_file_json_lines() {
        assert_eq!(settings(&[], true), LogSettings { json: false, ansi: true, filter: "info".into() });
        assert_eq!(
            settings(&[("RUST_LOG", "debug")], false),
            LogSettings { json: true, ansi: false, filter: "debug".into() }
        );
        let text = settings(&[("AWS_LAMBDA_LOG_FORMAT", "Text")], false);
        assert_eq!((text.json, text.ansi), (false, false), "asked for text, a file gets plain text");
        assert!(!settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")], true).ansi, "JSON never carries colour");
    }

    #[test]
    fn a_filter_is_a_level_and_levels_per_target() {
        use tracing::Level;
        let targets = settings(&[("RUST_LOG", "warn,rushcart::feed=debug")], false).targets();
        assert!(targets.would_enable("rushcart::feed::relay", &Level::DEBUG));
        assert!(!targets.would_enable("rushcart::orders", &Level::INFO));
        assert!(targets.would_enable("rushcart::orders", &Level::WARN));
        let lambda = settings(&[("AWS_LAMBDA_LOG_LEVEL", "ERROR")], false).targets();
        assert!(!lambda.would_enable("rushcart", &Level::WARN) && lambda.would_enable("rushcart", &Level::ERROR));
        let garbled = settings(&[("RUST_LOG", "=[")], false).targets();
        assert!(garbled.would_enable("rushcart", &Level::INFO) && !garbled.would_enable("rushcart", &Level::DEBUG));
    }
}
