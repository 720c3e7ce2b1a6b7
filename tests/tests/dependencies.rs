//! What the build is made of: rustls has exactly one crypto provider (aws-lc-rs, which
//! the AWS SDK brings), so `ClientConfig::builder()` never has to choose between two
//! and panic — as it did for every `rediss://` connection when reqwest brought ring.

use std::process::Command;

/// `cargo tree --invert <package>` over the workspace (with `features`): the packages
/// that pull it in, or `None` when the build does not contain it at all.
fn dependents(package: &str, features: &[&str]) -> Option<String> {
    let mut command = Command::new(env!("CARGO"));
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).args([
        "tree",
        "--workspace",
        "--offline",
        "--edges",
        "normal,build",
        "--invert",
        package,
    ]);
    for feature in features {
        command.args(["--features", feature]);
    }
    let output = command.output().expect("run cargo tree");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        assert!(stderr.contains("did not match any packages"), "cargo tree failed: {stderr}");
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (!stdout.trim().is_empty()).then_some(stdout)
}

#[test]
fn rustls_has_one_crypto_provider_and_it_is_aws_lc() {
    for features in [&[][..], &["rushcart-tests/testcontainers"][..]] {
        if let Some(tree) = dependents("ring", features) {
            panic!("ring is built (features {features:?}), beside aws-lc-rs:\n{tree}");
        }
        assert!(dependents("aws-lc-rs", features).is_some(), "aws-lc-rs provides rustls's crypto");
    }
}

#[test]
fn one_http_stack_only() {
    // The AWS SDK's default features added hyper 0.14 and rustls 0.21 beside hyper 1.
    for old in ["hyper@0.14", "rustls@0.21", "h2@0.3"] {
        if let Some(tree) = dependents(old, &[]) {
            panic!("{old} is built:\n{tree}");
        }
    }
}

/// The functions under `functions/` that run on Lambda (all but the local API).
fn lambdas() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../functions");
    let mut lambdas = Vec::new();
    for entry in std::fs::read_dir(root).expect("read functions/") {
        let name = entry.expect("a directory entry").file_name().to_string_lossy().into_owned();
        if name != "local-api" {
            lambdas.push(name);
        }
    }
    assert!(lambdas.len() > 20, "the functions were found: {lambdas:?}");
    lambdas
}

/// The local engine, and the testkit (seeding, audits, the local feed pollers,
/// provisioning, the store's counters), are for the stack, the admin CLI, the
/// benchmarks and the tests: no function's crate reaches them through its normal or
/// build dependencies, nor does the library every function links.
#[test]
fn no_lambda_links_the_local_engine_or_the_testkit() {
    for package in ["dynoxide-rs", "rushcart-testkit", "aws-sdk-dynamodbstreams", "rushcart-capacity"] {
        let tree = dependents(package, &[]).unwrap_or_else(|| panic!("{package} is built for the local stack"));
        for lambda in lambdas() {
            assert!(!tree.contains(&format!(" {lambda} v")), "{lambda} links {package}:\n{tree}");
        }
        assert!(!tree.contains(" rushcart v"), "the shared library links {package}:\n{tree}");
    }
}
