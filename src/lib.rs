//! ami-publisher: an AWS Lambda function that publishes EC2 AMIs tagged for
//! publishing. The library holds all the logic so tests and benches reach
//! it; `main.rs` only wires configuration, clients and the runtime.

pub mod cli;
pub mod clients;
pub mod config;
pub mod content;
pub mod copies;
mod copy_index;
pub mod disk;
pub mod ebs;
pub mod ec2;
pub mod eligibility;
pub mod error;
pub mod event;
pub mod history;
pub mod http_client;
mod inspection;
mod invocation;
pub mod ledger;
pub mod model;
pub mod pace;
pub mod plan;
mod publish;
pub mod publisher;
pub mod quota;
mod reconcile;
pub mod report;
pub mod rotation;
pub mod service_quotas;
pub mod snapshot;
pub mod steps;
mod sweep;
mod takedown;
