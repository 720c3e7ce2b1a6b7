//! Logging set-up: JSON lines on Lambda (CloudWatch parses them) and wherever the output
//! is a file (`make run`'s and the drill's logs: one grep or `jq` finds a request by
//! its id), readable text on a terminal, and never ANSI colour codes in a file. The
//! template's `LoggingConfig` decides on Lambda: `AWS_LAMBDA_LOG_FORMAT` (`JSON` or
//! `Text`, which also overrides the default locally) and `AWS_LAMBDA_LOG_LEVEL`; else
//! `RUST_LOG` filters, defaulting to `info`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How a process logs, decided from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub json: bool,
    pub ansi: bool,
    /// An `EnvFilter` directive.
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
    crate::install_crypto_provider();
    let settings = LogSettings::from_env(|name| std::env::var(name).ok(), std::io::stdout().is_terminal());
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(settings.ansi);
    // `try_init`: a second call (tests, the local API) keeps the first subscriber.
    let _ =
        if settings.json { builder.json().with_current_span(true).try_init() } else { builder.compact().try_init() };
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
}
