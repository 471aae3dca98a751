//! ami-publisher: an AWS Lambda function that publishes EC2 AMIs tagged for
//! publishing. The library holds all the logic so tests and benches reach
//! it; `main.rs` only wires configuration, clients and the runtime.

pub mod config;
pub mod ec2;
pub mod eligibility;
pub mod event;
pub mod http_client;
pub mod model;
pub mod plan;
pub mod publisher;
pub mod report;
