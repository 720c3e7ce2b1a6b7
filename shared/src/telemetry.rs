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
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(settings.ansi)
        .with_writer(writer);
    // `try_init`: a second call (tests, the local API) keeps the first subscriber. A
    // JSON line carries the request span once (`span`): it is the only span there is,
    // so the list of enclosing spans would repeat it on every line.
    let _ = if settings.json {
        builder.json().with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.compact().try_init()
    };
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

    /// JSON lines carry the current span only ([`init`]), which is all of the context
    /// while the request span is the only span: a second one would hide the request's
    /// ids from the lines logged inside it.
    #[test]
    fn the_request_span_is_the_only_span() {
        fn sources(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, String)>) {
            for entry in std::fs::read_dir(dir).expect("read the sources").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push((path.clone(), std::fs::read_to_string(&path).expect("read a source")));
                }
            }
        }
        let mut found = Vec::new();
        sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut found);
        let spans: Vec<String> = found
            .iter()
            .flat_map(|(path, text)| {
                ["_span!(", "#[instrument", "tracing::instrument"]
                    .iter()
                    .filter(|needle| text.contains(*needle))
                    .map(move |needle| format!("{} {needle}", path.display()))
            })
            .filter(|hit| !hit.contains("telemetry.rs"))
            .collect();
        assert_eq!(spans.len(), 1, "{spans:?}");
        assert!(spans[0].contains("http/mod.rs"), "{spans:?}");
    }
}
