//! TLS on both sides of the gateway: its own certificate for agents, and
//! the client towards each upstream (the system's roots or a CA file,
//! optionally a client certificate for mutual TLS). rustls with the ring
//! provider, chosen explicitly so no process-wide default is needed.

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{TlsConfig, UpstreamConfig};

/// The HTTP client for one upstream.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("cannot read certificates from `{path}`: {e}"))?;
    if certificates.is_empty() {
        return Err(format!("`{path}` holds no PEM certificate"));
    }
    Ok(certificates)
}

fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a PEM private key from `{path}`: {e}"))
}

/// The serving configuration: the certificate chain and key, checked to
/// belong together; HTTP/1.1 by ALPN.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates(&tls.cert_file)?;
    let key = private_key(&tls.key_file)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "`{}` and `{}` do not make a usable certificate: {e}",
                tls.cert_file, tls.key_file
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS client configuration for an `https://` upstream (`None` for
/// `http://`): trust anchors from `ca_file` or the system, and the client
/// certificate when mutual TLS is configured.
pub fn client_config(upstream: &UpstreamConfig) -> Result<Option<ClientConfig>, String> {
    if !upstream.url.starts_with("https://") {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    match &upstream.ca_file {
        Some(path) => {
            for certificate in certificates(path)? {
                roots
                    .add(certificate)
                    .map_err(|e| format!("`{path}` holds an unusable CA certificate: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "the system has no trust anchors for `https://` upstreams; set `ca_file`"
                        .into(),
                );
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match (&upstream.client_cert_file, &upstream.client_key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| {
                format!("`{cert}` and `{key}` do not make a usable client certificate: {e}")
            })?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

/// A pooled client for one upstream: HTTP/1.1, or HTTP/2 only (`h2c` by
/// prior knowledge over `http://`, ALPN `h2` over `https://`).
pub fn upstream_client(upstream: &UpstreamConfig) -> Result<UpstreamClient, String> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = match client_config(upstream)? {
        Some(config) => config,
        // Never used for `http://`, but the connector wants one.
        None => ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
    };
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = if upstream.http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    };
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(upstream.http2)
        .build(connector))
}
