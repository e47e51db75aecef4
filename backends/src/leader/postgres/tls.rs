//! TLS for the leader lock's connection, through rustls with ring (as reqwest and lettre use
//! it: no OpenSSL), with libpq's meanings of `sslmode`:
//!
//! - `disable`: plain TCP, no TLS.
//! - `prefer`, the default when the URL names no sslmode (as Heroku's `DATABASE_URL`): TLS when
//!   the server offers it, else plain. Unlike libpq, a failed handshake is not retried plain.
//! - `require`: TLS or no connection.
//! - `verify-ca` and `verify-full`: refused when the URL is read (tokio-postgres 0.7 cannot parse
//!   them), with a message that names `require`.
//!
//! As libpq without a root certificate, `prefer` and `require` do not check who signed the
//! server's certificate: this keeps the session private from eavesdroppers, not from an impostor
//! on the path. This module only builds connectors; it must not open connections itself.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector for `prefer` and `require`: TLS 1.2 or 1.3, any server certificate.
pub fn connector() -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring's provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// Accepts any server certificate, as libpq's `sslmode=require` does: Heroku Postgres's
/// certificates are not signed by a public CA (Heroku documents `sslmode=require`), so checking
/// the chain against public roots would refuse every Heroku database.
///
/// The handshake signatures are still checked with the provider's algorithms: they prove the
/// server holds the key of the certificate it sent, so the handshake stays a real TLS handshake
/// (a corrupt or forged one fails) and only the question "who signed this certificate" is
/// skipped. rustls has no such verifier of its own (it verifies chains or nothing), so it is
/// written here.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A connector that notes whether the TLS handshake took place: with `prefer`, tokio-postgres
/// falls back to plain without saying so, and the log should tell which it was.
pub struct NotingTls {
    inner: MakeRustlsConnect,
    used: Arc<AtomicBool>,
}

impl NotingTls {
    /// The connector for one connection attempt, and the flag set when its handshake succeeds.
    pub fn new(inner: MakeRustlsConnect) -> (Self, Arc<AtomicBool>) {
        let used = Arc::new(AtomicBool::new(false));
        (
            NotingTls {
                inner,
                used: used.clone(),
            },
            used,
        )
    }
}

impl<S> MakeTlsConnect<S> for NotingTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = NotingConnect<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let inner = MakeTlsConnect::<S>::make_tls_connect(&mut self.inner, domain)?;
        Ok(NotingConnect {
            inner,
            used: self.used.clone(),
        })
    }
}

pub struct NotingConnect<T> {
    inner: T,
    used: Arc<AtomicBool>,
}

type Handshake<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, T> TlsConnect<S> for NotingConnect<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
    T::Error: 'static,
    T::Stream: 'static,
{
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = Handshake<T::Stream, T::Error>;

    fn connect(self, stream: S) -> Self::Future {
        let handshake = self.inner.connect(stream);
        let used = self.used;
        Box::pin(async move {
            let stream = handshake.await?;
            used.store(true, Ordering::Relaxed);
            Ok(stream)
        })
    }
}
