//! The testcontainers backend is real code that must not pass where it cannot run.
//! `make test` runs this file with the `testcontainers` feature (the Docker client);
//! without it, the backend refuses with a message naming the feature.

#[cfg(feature = "testcontainers")]
fn docker_available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || std::path::Path::new("/var/run/docker.sock").exists()
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[cfg(not(feature = "testcontainers"))]
#[tokio::test]
async fn without_the_feature_the_testcontainers_backend_names_it() {
    let outcome = tokio::spawn(rushcart_tests::testcontainers_endpoint()).await;
    let message = panic_message(outcome.expect_err("no Docker client in this build").into_panic());
    assert!(message.contains("--features testcontainers"), "unclear failure: {message}");
}

#[cfg(feature = "testcontainers")]
#[tokio::test]
async fn the_testcontainers_backend_fails_loudly_without_docker_and_works_with_it() {
    let outcome = tokio::spawn(rushcart_tests::testcontainers_endpoint()).await;
    if docker_available() {
        let endpoint = outcome.expect("LocalStack starts where Docker runs");
        let client = rushcart_tests::dynamodb_client(&endpoint).await;
        client.list_tables().send().await.expect("LocalStack's DynamoDB answers");
    } else {
        let panic = outcome.expect_err("no Docker engine here, so starting LocalStack must fail").into_panic();
        let message = panic_message(panic);
        assert!(message.contains("needs a running Docker engine"), "unclear failure: {message}");
    }
}
