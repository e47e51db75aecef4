//! `email`: one plain-text message per event over real SMTP (lettre on tokio, rustls), from
//! `from` to every address in `to` (the seed's ADMINS).
//!
//! `smtp_url` holds the password, so it travels as a [`Secret`] and is shown as
//! `smtp://***@host:port`. STARTTLS when the URL asks for it (`?tls=required`, or
//! `?tls=opportunistic`), implicit TLS for `smtps://`. Each message names the app and the event
//! in its subject and gives what happened, the numbers behind it and what the reader may want
//! to change. Each send opens its own connection: notifications are rare, and a pooled
//! connection gone stale would only fail later. When the server refuses one recipient (550),
//! the message goes again to each recipient on their own, so the others still get it.

use super::{
    delivery_policy, BuildContext, Delivered, DeliveryPolicy, Event, EventKind, Notifier,
    NotifierEntry, NotifierSettings, NotifyError, SettingsKind,
};
use crate::settings::{fields, named, variable_for, Check, Raw, SecretRaw};
use crate::Secret;
use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::Category;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use url::Url;

const NAME: &str = "email";

/// The registry's entry.
pub const ENTRY: NotifierEntry = NotifierEntry {
    name: NAME,
    settings: SettingsKind::Table {
        keys: fields::<RawEmail>,
        read,
    },
};

/// The `[email]` table as written: its keys.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    /// The URL holds the password.
    smtp_url: SecretRaw,
    from: Raw,
    to: Raw,
    tls_ca_file: Raw,
    timeout: Raw,
    give_up_after: Raw,
}

fn prefix() -> String {
    format!("{NAME}.")
}

/// `[email]`: the SMTP server, the sender and the readers. A relative `tls_ca_file` is beside
/// the settings file; it is read here, once, at startup.
fn read(table: &Raw, is_named: bool, check: &mut Check) -> Option<Arc<dyn NotifierSettings>> {
    let Some(raw) = table.section::<RawEmail>(check) else {
        if is_named && !table.is_set() {
            named::<RawEmail>(&prefix()).smtp_url.missing(
                check,
                "an [email] table with smtp_url, from and to, since notification_backends names \"email\"",
            );
        }
        return None;
    };
    let mark = check.mark();
    if !raw.smtp_url.is_set() {
        let variable = raw.smtp_url.variable();
        raw.smtp_url.missing(
            check,
            format!("an SMTP URL such as \"smtp://user:password@smtp.example.com:587?tls=required\" (or {variable})"),
        );
    }
    let smtp_url = raw.smtp_url.parsed(check, |text| {
        check_smtp_url(text).map(|()| Secret::new(text.trim()))
    });
    if !raw.from.is_set() {
        raw.from.missing(
            check,
            "the sender's address, such as \"autoscalebot <ops@example.com>\"",
        );
    }
    let from = raw.from.parsed(check, parse_mailbox);
    let mut to = Vec::new();
    match raw.to.string_list(check) {
        None if !raw.to.is_set() => raw.to.missing(
            check,
            "a list of addresses such as [\"ops@example.com\"] (the people to tell)",
        ),
        None => {}
        Some(list) if list.is_empty() => raw.to.bad_shown(
            check,
            "[]".to_string(),
            "at least one address, such as [\"ops@example.com\"]",
        ),
        Some(list) => {
            for address in list {
                match parse_mailbox(&address) {
                    Ok(mailbox) => to.push(mailbox),
                    Err(why) => raw.to.bad_text(check, &address, why),
                }
            }
        }
    }
    let tls_ca = read_tls_ca(&raw.tls_ca_file, check);
    if let (Some(url), Some(ca)) = (&smtp_url, &tls_ca) {
        if !smtp_url_uses_tls(url.expose()) {
            raw.tls_ca_file.bad_text(
                check,
                &ca.path.display().to_string(),
                "an smtp_url with TLS (\"smtps://…\" or \"smtp://…?tls=required\") for the CA to check: \
                 this smtp_url is plain SMTP, so mail would go unencrypted",
            );
        }
    }
    let policy = delivery_policy(&raw.timeout, &raw.give_up_after, check);
    if check.failed_since(mark) {
        return None;
    }
    Some(Arc::new(EmailConfig {
        smtp_url: smtp_url?,
        from: from?,
        to,
        policy: policy?,
        tls_ca,
    }))
}

fn read_tls_ca(raw: &Raw, check: &mut Check) -> Option<TrustedCa> {
    let path = match raw.value()?.clone().into_string() {
        Ok(path) if path.trim().is_empty() => return None,
        Ok(path) => path,
        Err(_) => {
            raw.bad(
                check,
                "the path of one PEM file of CA certificates, such as \"relay-ca.pem\" (several certificates go in that one file)",
            );
            return None;
        }
    };
    match TrustedCa::read(&check.beside_settings(path.trim())) {
        Ok(ca) => Some(ca),
        Err(why) => {
            raw.bad(check, why);
            None
        }
    }
}

impl NotifierSettings for EmailConfig {
    fn name(&self) -> &'static str {
        NAME
    }

    fn build(&self, _context: &BuildContext) -> Result<Arc<dyn Notifier>, String> {
        Ok(Arc::new(EmailNotifier::new(self)?))
    }

    fn rows(&self, variables: &BTreeMap<String, String>) -> Vec<(&'static str, String)> {
        let keys = named::<RawEmail>(&prefix());
        let addresses: Vec<String> = self
            .to
            .iter()
            .map(|to| format!("{:?}", to.to_string()))
            .collect();
        let shown = RawEmail {
            smtp_url: SecretRaw::shown(
                format!("{:?}", redact_smtp_url(self.smtp_url.expose())),
                variable_for(variables, keys.smtp_url.key()),
            ),
            from: Raw::quoted(&self.from.to_string()),
            to: Raw::shown(format!("[{}]", addresses.join(", "))),
            tls_ca_file: Raw::optional(self.tls_ca.as_ref(), |ca| {
                Raw::shown(format!(
                    "{:?} ({} certificate{})",
                    ca.path.display().to_string(),
                    ca.len(),
                    if ca.len() == 1 { "" } else { "s" }
                ))
            }),
            timeout: Raw::duration(self.policy.timeout),
            give_up_after: Raw::duration(self.policy.give_up_after),
        };
        crate::settings::rows(&prefix(), &shown)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The validated `[email]` table.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub smtp_url: Secret,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub policy: DeliveryPolicy,
    /// `tls_ca_file`: certificates trusted besides the webpki roots.
    pub tls_ca: Option<TrustedCa>,
}

/// The certificates of a `tls_ca_file`, read once at startup: a relay whose certificate a
/// private CA signed is trusted through them, in addition to the webpki roots.
#[derive(Clone)]
pub struct TrustedCa {
    pub path: PathBuf,
    /// Each certificate of the file, DER.
    certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TrustedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TrustedCa({}, {} certificates)",
            self.path.display(),
            self.certificates.len()
        )
    }
}

const CA_FILE_EXPECTED: &str =
    "a PEM file of one or more CA certificates (\"-----BEGIN CERTIFICATE-----\" blocks)";

impl TrustedCa {
    /// Reads and checks a PEM file of CA certificates. The error says what was expected and
    /// what the file at `path` is instead.
    pub fn read(path: &Path) -> Result<TrustedCa, String> {
        let shown = path.display();
        let bytes = std::fs::read(path)
            .map_err(|error| format!("{CA_FILE_EXPECTED}; {shown} cannot be read ({error})"))?;
        let certificates: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&bytes)
            .map(|item| item.map(|der| der.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|error| format!("{CA_FILE_EXPECTED}; {shown} is not valid PEM ({error})"))?;
        if certificates.is_empty() {
            return Err(format!("{CA_FILE_EXPECTED}; {shown} holds no certificate"));
        }
        let ca = TrustedCa {
            path: path.to_path_buf(),
            certificates,
        };
        // rustls parses each certificate as a trust anchor only when the parameters are
        // built: build them once here so that a damaged file stops the worker at start.
        ca.tls_parameters("localhost").map_err(|error| {
            format!("{CA_FILE_EXPECTED}; a certificate in {shown} does not parse ({error})")
        })?;
        Ok(ca)
    }

    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// TLS for `host`: the webpki roots and these certificates; host names are checked.
    fn tls_parameters(&self, host: &str) -> Result<TlsParameters, SmtpError> {
        let mut builder = TlsParameters::builder(host.to_string());
        for der in &self.certificates {
            builder = builder.add_root_certificate(Certificate::from_der(der.clone())?);
        }
        builder.build_rustls()
    }
}

/// Whether an `smtp_url` asks for TLS (`smtps://`, or `?tls=required|opportunistic`): a
/// `tls_ca_file` means nothing without it.
pub fn smtp_url_uses_tls(text: &str) -> bool {
    Url::parse(text.trim())
        .is_ok_and(|url| url.scheme() == "smtps" || url.query_pairs().any(|(key, _)| key == "tls"))
}

const SMTP_URL_EXAMPLE: &str = "an SMTP URL such as \"smtp://user:password@smtp.example.com:587?tls=required\" (STARTTLS) or \"smtps://user:password@smtp.example.com:465\"";

/// Checks an `smtp_url` without connecting. The error never repeats the URL.
pub fn check_smtp_url(text: &str) -> Result<(), String> {
    let url = Url::parse(text.trim())
        .map_err(|error| format!("{SMTP_URL_EXAMPLE}; it does not parse ({error})"))?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(format!(
            "{SMTP_URL_EXAMPLE}; the scheme is {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{SMTP_URL_EXAMPLE}; it names no host"));
    }
    let tls = url
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.to_string());
    if url.scheme() == "smtp"
        && !matches!(tls.as_deref(), None | Some("required" | "opportunistic"))
    {
        return Err(format!(
            "{SMTP_URL_EXAMPLE}; tls may be \"required\" or \"opportunistic\", not {:?}",
            tls.unwrap_or_default()
        ));
    }
    AsyncSmtpTransport::<Tokio1Executor>::from_url(text.trim())
        .map(|_| ())
        .map_err(|error| format!("{SMTP_URL_EXAMPLE}; {error}"))
}

/// `smtp://***@smtp.example.com:587?tls=required`: where mail goes, without the credentials.
pub fn redact_smtp_url(text: &str) -> String {
    let Ok(url) = Url::parse(text.trim()) else {
        return "***".to_string();
    };
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        shown.push_str("***@");
    }
    shown.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        let _ = write!(shown, ":{port}");
    }
    if let Some((_, tls)) = url.query_pairs().find(|(key, _)| key == "tls") {
        let _ = write!(shown, "?tls={tls}");
    }
    shown
}

/// A mailbox: `ops@example.com` or `Ops Team <ops@example.com>`.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.trim().parse::<Mailbox>().map_err(|error| {
        format!(
            "an email address such as \"ops@example.com\" or \"Ops <ops@example.com>\" ({error})"
        )
    })
}

pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `smtp://***@host:port`, for messages.
    server: String,
    smtp_url: Secret,
    policy: DeliveryPolicy,
}

impl EmailNotifier {
    pub fn new(config: &EmailConfig) -> Result<Self, String> {
        check_smtp_url(config.smtp_url.expose())?;
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(config.smtp_url.expose().trim())
                .map_err(|error| error.to_string())?
                .timeout(Some(config.policy.timeout));
        if let Some(ca) = &config.tls_ca {
            // The same TLS mode as the URL's (lettre's from_url chose it), with the extra
            // roots: lettre offers no way to add roots to what from_url built.
            let url = Url::parse(config.smtp_url.expose().trim()).map_err(|e| e.to_string())?;
            let host = url.host_str().unwrap_or_default();
            let parameters = ca
                .tls_parameters(host)
                .map_err(|error| format!("email.tls_ca_file {}: {error}", ca.path.display()))?;
            let tls = match url.query_pairs().find(|(key, _)| key == "tls") {
                _ if url.scheme() == "smtps" => Tls::Wrapper(parameters),
                Some((_, mode)) if mode == "opportunistic" => Tls::Opportunistic(parameters),
                Some(_) => Tls::Required(parameters),
                None => Tls::None,
            };
            builder = builder.tls(tls);
        }
        let transport = builder.build();
        Ok(EmailNotifier {
            transport,
            from: config.from.clone(),
            to: config.to.clone(),
            server: redact_smtp_url(config.smtp_url.expose()),
            smtp_url: config.smtp_url.clone(),
            policy: config.policy,
        })
    }

    /// The message for one event, ready to send.
    pub fn message(&self, event: &Event) -> Result<Message, NotifyError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(event))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(body(event))
            .map_err(|error| NotifyError::permanent(format!("building the message: {error}")))
    }

    /// The URL's password must not reach a log even if a server quotes it back.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        if let Ok(url) = Url::parse(self.smtp_url.expose().trim()) {
            if let Some(password) = url.password().filter(|p| p.len() >= 3) {
                text = text.replace(password, "***");
                if let Ok(decoded) = percent_decode(password) {
                    text = text.replace(&decoded, "***");
                }
            }
        }
        text
    }
}

fn percent_decode(text: &str) -> Result<String, ()> {
    let decoded: Vec<u8> = url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned().into_bytes())
        .ok_or(())?;
    String::from_utf8(decoded).map_err(|_| ())
}

#[async_trait]
impl Notifier for EmailNotifier {
    fn name(&self) -> &'static str {
        "email"
    }

    fn policy(&self) -> DeliveryPolicy {
        self.policy
    }

    async fn send(&self, event: &Event) -> Result<Delivered, NotifyError> {
        let message = self.message(event)?;
        let envelope = message.envelope();
        let formatted = message.formatted();
        match self.transport.send_raw(envelope, &formatted).await {
            Ok(_) => Ok(Delivered::ALL),
            Err(error) if envelope.to().len() > 1 && may_refuse_a_recipient(&error) => {
                self.send_to_each(envelope, &formatted, &error).await
            }
            Err(error) => Err(self.failure(&error)),
        }
    }
}

/// The rustls error under a failed TLS handshake, when that is what failed. lettre reports a
/// handshake as a connection error (which may pass); it is found in the error's sources,
/// where tokio-rustls wraps it in an `io::Error`.
fn tls_handshake_error(error: &SmtpError) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if inner.is_some() {
            return inner;
        }
        next = current.source();
    }
    None
}

/// What a failed handshake means and what to change, for the certificate errors people meet.
fn certificate_advice(error: &rustls::Error) -> String {
    use rustls::CertificateError as Certificate;
    let advice = match error {
        rustls::Error::InvalidCertificate(Certificate::UnknownIssuer) => {
            "The server's certificate is not signed by a trusted CA: if the relay's CA is a \
             private one, set email.tls_ca_file to its PEM file"
        }
        rustls::Error::InvalidCertificate(
            Certificate::NotValidForName | Certificate::NotValidForNameContext { .. },
        ) => "The server's certificate does not name the host of smtp_url: use a name it names",
        rustls::Error::InvalidCertificate(
            Certificate::Expired | Certificate::ExpiredContext { .. },
        ) => "The server's certificate has expired",
        _ => "",
    };
    if advice.is_empty() {
        error.to_string()
    } else {
        format!("{error}. {advice}.")
    }
}

/// A 55x answer: what a server says at RCPT about an address it will not take (550 no such
/// mailbox, 551, 552, 553). lettre fails the whole transaction on it and does not say at which
/// command, so [`EmailNotifier::send_to_each`] finds out. Bad credentials (535), a 4xx
/// or a broken connection are not this.
fn may_refuse_a_recipient(error: &SmtpError) -> bool {
    error.is_permanent()
        && error
            .status()
            .is_some_and(|code| code.category == Category::MailSystem)
}

impl EmailNotifier {
    /// The error for a failed send; the password never shows. 5xx answers (a refused
    /// recipient, bad credentials), TLS and client errors will not pass by themselves; 4xx
    /// answers and broken connections may, and are retried.
    fn failure(&self, error: &SmtpError) -> NotifyError {
        if let Some(tls) = tls_handshake_error(error) {
            return NotifyError::permanent(format!(
                "SMTP server {}: TLS failed: {}",
                self.server,
                certificate_advice(tls)
            ));
        }
        let text = format!(
            "SMTP server {}: {}",
            self.server,
            self.scrub(&error.to_string())
        );
        if error.is_permanent() || error.is_tls() || error.is_client() {
            NotifyError::permanent(text)
        } else {
            NotifyError::transient(text)
        }
    }

    /// After the server refused the message sent to several recipients at once: one
    /// transaction per recipient, so that one address the server will not take does not keep
    /// the message from the others. Each refused address is logged (an address is no secret).
    /// When nobody got it, the first error stands, so a refusal of the sender or of the
    /// message itself reads as before; when a recipient failed in a way that may pass, the
    /// whole message is tried again later, as any such failure is, even if that means a
    /// second copy for those who got it: a duplicate beats a lost alert.
    async fn send_to_each(
        &self,
        envelope: &Envelope,
        formatted: &[u8],
        first: &SmtpError,
    ) -> Result<Delivered, NotifyError> {
        let mut reached = 0;
        let mut refused = Vec::new();
        let mut passing: Option<NotifyError> = None;
        for to in envelope.to() {
            let single =
                Envelope::new(envelope.from().cloned(), vec![to.clone()]).map_err(|error| {
                    NotifyError::permanent(format!("the envelope to {to}: {error}"))
                })?;
            match self.transport.send_raw(&single, formatted).await {
                Ok(_) => reached += 1,
                Err(error) => {
                    let failure = self.failure(&error);
                    if failure.retriable {
                        passing.get_or_insert(failure);
                    } else {
                        refused.push((to.to_string(), failure.message));
                    }
                }
            }
        }
        if reached == 0 {
            return Err(passing.unwrap_or_else(|| self.failure(first)));
        }
        for (address, answer) in &refused {
            tracing::warn!(
                backend = "email",
                %address,
                error = %answer,
                reached,
                "Email recipient refused; the other recipients got the message."
            );
        }
        if let Some(failure) = passing {
            return Err(failure);
        }
        Ok(Delivered {
            refused: refused
                .into_iter()
                .map(|(address, answer)| format!("{address}: {answer}"))
                .collect(),
        })
    }
}

/// "[autoscalebot] my-app: scaled from 2 to 3 dynos".
pub fn subject(event: &Event) -> String {
    let dynos = |n: Option<u32>| n.map_or("?".to_string(), |n| n.to_string());
    let what = match event.kind {
        EventKind::Ping => match event.response_time_ms {
            Some(ms) => format!("heartbeat in {ms} ms"),
            None => "heartbeat".to_string(),
        },
        EventKind::Scaled if event.message.starts_with("Would") => format!(
            "would scale from {} to {} dynos (dry run)",
            dynos(event.from_quantity),
            dynos(event.to_quantity)
        ),
        EventKind::Scaled => format!(
            "scaled from {} to {} dynos",
            dynos(event.from_quantity),
            dynos(event.to_quantity)
        ),
        EventKind::ScaleFailed => "scaling failed".to_string(),
        EventKind::ScaleRecovered => "scaling works again".to_string(),
        EventKind::NeedsAboveMax => {
            format!("needs more than max_dynos ({})", dynos(event.max_dynos))
        }
        EventKind::NeedsAboveMaxEnded => "no longer needs more than max_dynos".to_string(),
        EventKind::NeedsBelowMin => format!(
            "could run fewer than min_dynos ({})",
            dynos(event.min_dynos)
        ),
        EventKind::NeedsBelowMinEnded => "no longer below what min_dynos allows".to_string(),
        EventKind::ScaleDiffExceeded => "scaling too much too fast".to_string(),
        EventKind::ScaleDiffEnded => "scaling has calmed down".to_string(),
        EventKind::HeartbeatMisconfigured => "the heartbeat URL looks wrong".to_string(),
        EventKind::HeartbeatMisconfiguredEnded => "the heartbeat URL answers again".to_string(),
        EventKind::DowntimeStarted => "planned downtime started".to_string(),
        EventKind::DowntimeEnded => "planned downtime ended".to_string(),
        EventKind::Test => "test notification".to_string(),
        EventKind::NotificationsDropped => "notifications were lost".to_string(),
    };
    format!("[autoscalebot] {}: {what}", event.app)
}

/// The plain-text body: what happened, the numbers, and what to change.
pub fn body(event: &Event) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{}\n", event.message);
    let mut row = |label: &str, value: String| {
        let _ = writeln!(text, "{label:<17}{value}");
    };
    row("App:", event.app.clone());
    row("Event:", event.kind.as_str().to_string());
    row(
        "When:",
        event.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    );
    if !event.reason.is_empty() {
        row("Why:", event.reason.clone());
    }
    match (event.from_quantity, event.to_quantity) {
        (Some(from), Some(to)) => row("Dynos:", format!("{from} -> {to}")),
        (Some(now), None) => row("Dynos:", now.to_string()),
        _ => {}
    }
    if let (Some(min), Some(max)) = (event.min_dynos, event.max_dynos) {
        row(
            "Bounds in force:",
            format!("min_dynos {min}, max_dynos {max}"),
        );
    }
    if let Some(ms) = event.response_time_ms {
        row("Last heartbeat:", format!("{ms} ms"));
    }
    let advice = advice(event.kind);
    if !advice.is_empty() {
        let _ = writeln!(text, "\nWhat you may want to change:\n{advice}");
    }
    let _ = write!(
        text,
        "\n-- \nSent by {} for {}.\n",
        crate::USER_AGENT,
        event.app
    );
    text
}

/// What a reader may do about an event, naming the settings that matter.
fn advice(kind: EventKind) -> &'static str {
    match kind {
        EventKind::NeedsAboveMax => "The app is at max_dynos and its heartbeat is still slower than max_response_time_in_ms.\nRaise max_dynos (or the hours of its time-of-day table that are too tight), or find\nout why responses are slow: more dynos do not help a slow database.",
        EventKind::NeedsBelowMin => "The app is at min_dynos and fast enough to run on fewer. Lower min_dynos (or its\ntime-of-day table at this hour) to spend less.",
        EventKind::ScaleFailed => "The Heroku Platform API refused or did not answer. Check heroku_api_key (or\nHEROKU_API_KEY), heroku_app_name and process_type; if they are right, the platform\nmay be down. The worker keeps trying on every heartbeat and will say when it works again.",
        EventKind::ScaleDiffExceeded => "The app scales up and down a lot. Widen the band between min_response_time_in_ms and\nmax_response_time_in_ms, raise number_of_passes_to_scale_down_after, or set\nscale_down_cooldown so that it holds its dynos longer.",
        EventKind::Scaled => "Nothing, if this was expected. To stop these messages, set notify_on_every_scale = false.",
        EventKind::Ping => "To stop a message on every heartbeat, set notify_on_every_ping = false.",
        EventKind::Test => "Nothing: this was sent by `autoscalebot notify-test` to check that email works.",
        EventKind::NotificationsDropped => "Check that the server behind this backend answers in time; the worker's log names\neach notification that was dropped and why.",
        EventKind::HeartbeatMisconfigured => "The worker cannot measure the app, so it does not add dynos for it. Check app_url\n(`heroku apps:info` shows the app's Web URL; apps made since mid-2023 have a random\nsuffix in their host name; left unset, the worker reads it from the Platform API) and\nheartbeat_url (its exact path, trailing slash included), and that the app serves the\nendpoint without a login. `autoscalebot check --online` tries it.",
        EventKind::DowntimeStarted => "Nothing, if this downtime was planned: the worker neither counts slow heartbeats\nnor scales up until it ends. To stop these messages, set notify_on_downtime = false.",
        EventKind::ScaleRecovered
        | EventKind::DowntimeEnded
        | EventKind::HeartbeatMisconfiguredEnded
        | EventKind::NeedsAboveMaxEnded
        | EventKind::NeedsBelowMinEnded
        | EventKind::ScaleDiffEnded => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn smtp_urls_are_checked_without_echoing_them() {
        assert!(check_smtp_url("smtp://user:pw@127.0.0.1:2525").is_ok());
        assert!(check_smtp_url("smtp://user:pw@mail.example.com:587?tls=required").is_ok());
        assert!(check_smtp_url("smtps://user:pw@mail.example.com").is_ok());
        let error = check_smtp_url("http://user:hunter2@mail.example.com").unwrap_err();
        assert!(
            error.contains("\"http\"") && !error.contains("hunter2"),
            "{error}"
        );
        let error = check_smtp_url("smtp://user:hunter2@mail.example.com?tls=yes").unwrap_err();
        assert!(
            error.contains("\"yes\"") && !error.contains("hunter2"),
            "{error}"
        );
        assert!(check_smtp_url("not a url hunter2")
            .unwrap_err()
            .contains("does not parse"));
    }

    #[test]
    fn the_shown_url_hides_the_credentials() {
        assert_eq!(
            redact_smtp_url("smtp://apikey:hunter2@smtp.example.com:587?tls=required"),
            "smtp://***@smtp.example.com:587?tls=required"
        );
        assert_eq!(
            redact_smtp_url("smtps://mail.example.com"),
            "smtps://mail.example.com"
        );
        assert_eq!(redact_smtp_url("::"), "***");
    }

    #[test]
    fn subject_names_app_and_event_and_body_gives_the_numbers_and_advice() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
        let mut event = Event::new(
            at,
            "my-app",
            EventKind::NeedsAboveMax,
            "We are at the max (5) dynos, but the response is still too slow.",
        );
        event.reason =
            "3 consecutive heartbeats slower than 1000 ms; consider raising max_dynos".into();
        event.from_quantity = Some(5);
        event.min_dynos = Some(1);
        event.max_dynos = Some(5);
        event.response_time_ms = Some(1840);
        assert_eq!(
            subject(&event),
            "[autoscalebot] my-app: needs more than max_dynos (5)"
        );
        let text = body(&event);
        for expected in [
            "We are at the max (5) dynos",
            "Dynos:           5",
            "min_dynos 1, max_dynos 5",
            "1840 ms",
            "Raise max_dynos",
            "2026-11-24 09:00:00 UTC",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        event.kind = EventKind::Scaled;
        event.to_quantity = Some(6);
        assert_eq!(
            subject(&event),
            "[autoscalebot] my-app: scaled from 5 to 6 dynos"
        );
        assert!(body(&event).contains("5 -> 6"));
    }

    #[test]
    fn addresses_are_checked() {
        assert!(parse_mailbox("Ops <ops@example.com>").is_ok());
        assert!(parse_mailbox("ops@example.com").is_ok());
        assert!(parse_mailbox("not an address").is_err());
    }
}
