//! The one HTTPS client of the process, shared by every AWS client built
//! from the same `SdkConfig` (each region's EC2 client, and any other
//! service's): one connection pool, one TLS configuration, root
//! certificates read and parsed once, and TLS set up on the first request
//! rather than when a client is built. Measured in bench/README.md, "TLS".

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_http_client::Connector;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The HTTPS client to set on the `SdkConfig` loader.
///
/// Without one there, each service client builds its own default client:
/// its own pool and TLS configuration, with the root certificates parsed
/// twice per client (once when the client is built, to check it, once on
/// its first request). This one is that default (hyper 1, rustls on aws-lc,
/// proxy from the environment, TCP_NODELAY) built once.
///
/// aws-lc is built without its CPU-jitter entropy source
/// (`AWS_LC_SYS_NO_JITTER_ENTROPY` in `.cargo/config.toml`): by default it
/// spends about 22 ms of CPU collecting jitter on its first use in a
/// process, before the first handshake can start, most of a cold
/// invocation's CPU (and Lambda gives a 256 MB function a seventh of a
/// vCPU). Without it, aws-lc seeds from the kernel (getrandom), as ring and
/// the OS's own TLS do. Keeping aws-lc keeps the post-quantum hybrid key
/// exchange (X25519MLKEM768) that AWS endpoints offer.
pub fn shared() -> SharedHttpClient {
    SharedHttpClient::new(Https::default())
}

/// A connector's connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug, Default)]
struct Https {
    /// One connector (and so one pool) per timeout setting; every client of
    /// this process has the same settings, so in practice there is one.
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| {
                let mut builder = Connector::builder()
                    .connector_settings(settings.clone())
                    .proxy_config(ProxyConfig::from_env());
                builder.set_sleep_impl(components.sleep_impl());
                SharedHttpConnector::new(
                    builder
                        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                        .build(),
                )
            })
            .clone()
    }

    // `validate_base_client_config` is left at its default, which does
    // nothing: the SDK's own client builds a whole connector there, when
    // each client is built, only to load the certificates early.
}
