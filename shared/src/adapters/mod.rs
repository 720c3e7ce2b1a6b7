//! Adapters: the only code that sees DynamoDB attribute values, Redis commands, and
//! SQS and Kinesis types.

pub mod dynamodb;
pub mod feed_aws;
pub mod redis_budget;
pub mod redis_connection;
pub mod redis_gate;
pub mod redis_top;

/// Attempts the SDK makes of one call (the first and two retries).
pub const MAX_ATTEMPTS: u32 = 3;

/// The AWS SDK configuration from the environment (region, credentials, and the
/// `AWS_ENDPOINT_URL_<SERVICE>` endpoints of the local stack), with timeouts short
/// enough that a dead dependency becomes a clear error instead of a hung Lambda, and
/// the retry policy stated rather than inherited: the SDK's standard mode, 3 attempts
/// with jittered backoff, inside the 8 s a call may take in all (transaction
/// conflicts are retried by [`crate::retry`], not by the SDK).
/// Loaded once per process and shared by every client built from it.
pub async fn aws_sdk_config() -> &'static aws_config::SdkConfig {
    static CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> = tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_init(|| async {
            let timeouts = aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(2))
                .operation_attempt_timeout(std::time::Duration::from_secs(3))
                .operation_timeout(std::time::Duration::from_secs(8))
                .build();
            let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS);
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .timeout_config(timeouts)
                .retry_config(retries);
            if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                loader = loader.region(aws_config::Region::from_static("us-east-1"));
            }
            loader.load().await
        })
        .await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn every_client_gets_the_stated_timeouts_and_retries() {
        let config = super::aws_sdk_config().await;
        let retries = config.retry_config().expect("a retry policy");
        assert_eq!(retries.mode(), aws_config::retry::RetryMode::Standard);
        assert_eq!(retries.max_attempts(), super::MAX_ATTEMPTS);
        let timeouts = config.timeout_config().expect("timeouts");
        assert_eq!(timeouts.operation_attempt_timeout(), Some(std::time::Duration::from_secs(3)));
        assert_eq!(timeouts.operation_timeout(), Some(std::time::Duration::from_secs(8)));
    }
}
