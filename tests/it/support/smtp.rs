//! Mail receivers: a real SMTP server (aiosmtpd, `smtp_server.py` beside this file) as a child
//! process, plain or TLS with a private CA made per test, and a server that never answers.

use std::process::{Child, Command, Stdio};

/// One message the SMTP server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub subject: String,
    pub to: String,
    pub body: String,
    pub login: Option<String>,
    /// The TLS version the session ran over ("TLSv1.3"); `None` for plain SMTP.
    #[serde(default)]
    pub tls: Option<String>,
}

/// One AUTH attempt the SMTP server saw, whether or not it succeeded.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LoginTried {
    /// The TLS version the password crossed; `None`: it crossed in the clear.
    pub tls: Option<String>,
}

/// How the SMTP server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte, as on port 465 (`smtps://`).
    Implicit,
    /// STARTTLS offered, and MAIL and AUTH refused before it.
    Starttls,
}

/// A private CA made for one test and a server certificate it signed, as PEM files: what a
/// company mail relay has. The CA is in no trust store.
pub struct PrivateCa {
    /// The CA's certificate: what `email.tls_ca_file` names.
    pub ca_file: std::path::PathBuf,
    pub server_cert_file: std::path::PathBuf,
    pub server_key_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl PrivateCa {
    /// A CA, and a server certificate for `names` (host names or IP addresses) signed by it.
    pub fn new(names: &[&str]) -> PrivateCa {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "autoscalebot test relay CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut server_params = CertificateParams::new(names).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "test relay");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        PrivateCa {
            ca_file: write("ca.pem", ca_cert.pem()),
            server_cert_file: write("server.pem", server_cert.pem()),
            server_key_file: write("server.key", server_key.serialize_pem()),
            _dir: dir,
        }
    }
}

/// A real SMTP server (aiosmtpd, `tests/it/support/smtp_server.py`) as a child process.
pub struct SmtpServer {
    pub port: u16,
    child: Child,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts on `port`; with `login`, AUTH with that user and password is required. Each of
    /// `reject` is refused at RCPT with a 550.
    pub fn start(port: u16, login: Option<(&str, &str)>, reject: &[&str]) -> SmtpServer {
        SmtpServer::spawn(port, login, reject, None)
    }

    /// Starts on `port` speaking TLS as `mode` says, with a certificate `ca` signed.
    pub fn start_tls(
        port: u16,
        login: Option<(&str, &str)>,
        mode: SmtpTls,
        ca: &PrivateCa,
    ) -> SmtpServer {
        SmtpServer::spawn(port, login, &[], Some((mode, ca)))
    }

    fn spawn(
        port: u16,
        login: Option<(&str, &str)>,
        reject: &[&str],
        tls: Option<(SmtpTls, &PrivateCa)>,
    ) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mail.jsonl");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/support/smtp_server.py"
        );
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg(format!("--port={port}"))
            .arg(format!("--out={}", out.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((user, password)) = login {
            command
                .arg(format!("--user={user}"))
                .arg(format!("--password={password}"));
        }
        for address in reject {
            command.arg(format!("--reject={address}"));
        }
        if let Some((mode, ca)) = tls {
            let mode = match mode {
                SmtpTls::Implicit => "implicit",
                SmtpTls::Starttls => "starttls",
            };
            command
                .arg(format!("--tls={mode}"))
                .arg(format!("--cert={}", ca.server_cert_file.display()))
                .arg(format!("--key={}", ca.server_key_file.display()));
        }
        let mut child = command
            .spawn()
            .expect("python3 runs (aiosmtpd is installed by .ci/run)");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(
            line.trim(),
            "READY",
            "the SMTP server did not start (is aiosmtpd installed? `pip install aiosmtpd`)"
        );
        SmtpServer {
            port,
            child,
            out,
            _dir: dir,
        }
    }

    /// Every message received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    pub fn subjects(&self) -> Vec<String> {
        self.mails().into_iter().map(|mail| mail.subject).collect()
    }

    /// Every AUTH attempt so far, oldest first.
    pub fn logins_tried(&self) -> Vec<LoginTried> {
        std::fs::read_to_string(self.out.with_extension("jsonl.logins"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server that accepts connections and never says a word: a mail server that hangs.
pub struct SilentServer {
    task: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        SilentServer { task }
    }

    /// Closes the port and every connection it held.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
