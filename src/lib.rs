//! ami-publisher: an AWS Lambda function that publishes EC2 AMIs tagged for
//! publishing. The library holds all the logic so tests and benches reach
//! it; `main.rs` only wires configuration, clients and the runtime.

pub mod cli;
pub mod clients;
pub mod config;
pub mod copies;
pub mod disk;
pub mod ec2;
pub mod eligibility;
pub mod event;
pub mod http_client;
pub mod model;
pub mod pace;
pub mod plan;
pub mod publisher;
pub mod quota;
pub mod report;
pub mod rotation;
pub mod service_quotas;
pub mod steps;
