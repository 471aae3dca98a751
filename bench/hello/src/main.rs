//! Hello-world Lambda: the floor ami-publisher's cold start is compared
//! with. Same start-up shape as ami-publisher's main (current-thread tokio,
//! lambda_runtime's default tracing subscriber), no AWS SDK.
//!
//! `{"panic": true}` makes the handler panic, so the benchmark can check
//! what the release profile's panic strategy does with a panic (it must be
//! reported as an invocation error, and the process must live on).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        if event.payload.get("panic") == Some(&Value::Bool(true)) {
            panic!("asked to panic");
        }
        Ok::<Value, Error>(json!({ "hello": event.payload }))
    }))
    .await
}
