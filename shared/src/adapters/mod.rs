//! Adapters: the only code that sees DynamoDB attribute values (and later Redis
//! commands, SQS and Kinesis types). `memory` backs unit tests only.

pub mod dynamodb;
pub mod feed_aws;
pub mod memory;
pub mod redis_connection;
pub mod redis_gate;
pub mod redis_top;
