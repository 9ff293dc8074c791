use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use zeroize::Zeroizing;

use super::env::VARIABLES;
use super::reload::{Poller, Publisher, ReloadError};
use super::{CredentialProvider, Credentials, CredentialsId, EnvCredentials};
use crate::error::ConfigError;

/// Credentials read from files and re-read when they change: secrets that
/// rotate without a redeploy or a line of code.
///
/// Two layouts, with the variable names of [`EnvCredentials`]:
///
/// - [`dir`](Self::dir): one value per file, each file named after its
///   variable (`SINCH_KEY_ID`, `SINCH_KEY_SECRET`, …), as Kubernetes mounts a
///   Secret whose keys are those names. One trailing newline is ignored.
/// - [`env_file`](Self::env_file): one file of `KEY=value` lines (blank lines,
///   `#` comments, `export ` and matching quotes around a value allowed).
///
/// The files are checked every poll interval (default 10 s) by a task on the
/// tokio runtime. When their content changes, the very next request uses the
/// new credentials, and tokens derived from the old ones are refetched (the
/// change is announced on [`changes`](CredentialProvider::changes)). A
/// directory mounted by Kubernetes is read through its `..data` link, so an
/// atomic swap of the whole secret is seen whole: never the old key id with
/// the new secret.
///
/// A file that is half written, malformed or gone keeps the last good
/// credentials in use; the problem is logged once and kept in
/// [`last_error`](Self::last_error), naming the file and the variable, never
/// the value. Only the first load must succeed.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use sinch_auth::{FileCredentials, SinchAuthLayer};
///
/// // volumeMounts: [{ name: sinch, mountPath: /var/run/secrets/sinch }]
/// let provider = FileCredentials::dir("/var/run/secrets/sinch")
///     .poll_interval(Duration::from_secs(30))
///     .load()?;
/// let layer = SinchAuthLayer::by_host(provider)?;
/// # Ok(()) }
/// ```
///
/// The files are read with blocking calls on the runtime: a handful of small
/// reads from a local (in Kubernetes, in-memory) file system per interval.
#[derive(Clone)]
pub struct FileCredentials {
    shared: Arc<Shared>,
    poller: Arc<Poller>,
}

struct Shared {
    source: Source,
    publisher: Publisher,
}

#[derive(Debug, Clone)]
enum Source {
    Dir(PathBuf),
    EnvFile(PathBuf),
}

/// Configures a [`FileCredentials`]; [`load`](Self::load) reads the files.
#[derive(Debug)]
#[must_use]
pub struct FileCredentialsBuilder {
    source: Source,
    interval: Duration,
    cooldown: Duration,
}

impl FileCredentials {
    /// Reads a directory holding one file per variable.
    pub fn dir(path: impl Into<PathBuf>) -> FileCredentialsBuilder {
        FileCredentialsBuilder::new(Source::Dir(path.into()))
    }

    /// Reads one file of `KEY=value` lines.
    pub fn env_file(path: impl Into<PathBuf>) -> FileCredentialsBuilder {
        FileCredentialsBuilder::new(Source::EnvFile(path.into()))
    }

    /// Checks the files now instead of at the next poll. `Ok(true)` when
    /// they held new credentials (now published), `Ok(false)` when nothing
    /// changed; on error the last good credentials stay in use.
    pub fn reload(&self) -> Result<bool, ReloadError> {
        self.shared.reload()
    }

    /// Why the last reload failed, until one succeeds again.
    pub fn last_error(&self) -> Option<Arc<ReloadError>> {
        self.shared.publisher.last_error()
    }
}

impl FileCredentialsBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            interval: Duration::from_secs(10),
            cooldown: Duration::from_secs(1),
        }
    }

    /// How often the files are checked (default 10 s). Kubernetes updates a
    /// mounted Secret within about a minute of a change, so a few seconds
    /// to a minute is plenty.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The least time between two checks asked for by
    /// [`credentials_rejected`](CredentialProvider::credentials_rejected)
    /// (default 1 s).
    pub fn reload_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Reads the files (an error if they do not hold usable credentials) and
    /// starts polling them on the current tokio runtime
    /// ([`ReloadError::NoRuntime`] outside one).
    pub fn load(self) -> Result<FileCredentials, ReloadError> {
        let initial = read(&self.source)?;
        let shared = Arc::new(Shared {
            source: self.source,
            publisher: Publisher::new(initial, "file credentials"),
        });
        let task = shared.clone();
        let poller = Poller::spawn(self.interval, self.cooldown, move || {
            // The outcome is recorded in `last_error`.
            let _ = task.reload();
            std::future::ready(())
        })?;
        Ok(FileCredentials {
            shared,
            poller: Arc::new(poller),
        })
    }
}

impl Shared {
    fn reload(&self) -> Result<bool, ReloadError> {
        match read(&self.source) {
            Ok(credentials) => Ok(self.publisher.offer(credentials)),
            Err(error) => Err(self.publisher.fail(error)),
        }
    }
}

type Values = HashMap<&'static str, Zeroizing<String>>;

fn read(source: &Source) -> Result<Arc<Credentials>, ReloadError> {
    match source {
        Source::Dir(dir) => {
            let values = read_dir(dir)?;
            parse(&values, |field| dir.join(field), dir)
        }
        Source::EnvFile(path) => {
            let values = read_env_file(path)?;
            parse(&values, |_| path.clone(), path)
        }
    }
}

/// Kubernetes writes a Secret's files into a fresh `..<timestamp>` directory,
/// then renames a `..data` symlink onto it; the visible names are links
/// through `..data`. Reading everything from the directory `..data` names,
/// and checking it still names it afterwards, gives one consistent snapshot.
fn read_dir(dir: &Path) -> Result<Values, ReloadError> {
    let data = dir.join("..data");
    let mut attempts = 0;
    loop {
        let before = std::fs::read_link(&data).ok();
        let base = before
            .as_ref()
            .map_or_else(|| dir.to_owned(), |t| dir.join(t));
        let mut values = Values::new();
        for &field in VARIABLES {
            match std::fs::read(base.join(field)) {
                Ok(bytes) => {
                    let text = utf8(bytes).ok_or_else(|| ReloadError::InvalidField {
                        path: dir.join(field),
                        field,
                        reason: "is not valid UTF-8",
                    })?;
                    let value = text
                        .strip_suffix("\r\n")
                        .or_else(|| text.strip_suffix('\n'))
                        .unwrap_or(&text);
                    values.insert(field, Zeroizing::new(value.to_owned()));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ReloadError::Read {
                        path: dir.join(field),
                        kind: e.kind(),
                    });
                }
            }
        }
        if std::fs::read_link(&data).ok() == before {
            return Ok(values);
        }
        attempts += 1;
        if attempts == 3 {
            // Swapped under us three times running: try again next poll.
            return Err(ReloadError::Read {
                path: data,
                kind: io::ErrorKind::Interrupted,
            });
        }
    }
}

fn read_env_file(path: &Path) -> Result<Values, ReloadError> {
    let bytes = std::fs::read(path).map_err(|e| ReloadError::Read {
        path: path.to_owned(),
        kind: e.kind(),
    })?;
    let text = utf8(bytes).ok_or_else(|| ReloadError::InvalidField {
        path: path.to_owned(),
        field: "file",
        reason: "is not valid UTF-8",
    })?;
    let mut values = Values::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(ReloadError::MalformedLine {
                path: path.to_owned(),
                line: index + 1,
            });
        };
        let Some(&field) = VARIABLES.iter().find(|&&v| v == key.trim()) else {
            continue; // other settings may share the file
        };
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|&q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)))
            .unwrap_or(value);
        values.insert(field, Zeroizing::new(value.to_owned()));
    }
    Ok(values)
}

fn utf8(bytes: Vec<u8>) -> Option<Zeroizing<String>> {
    match String::from_utf8(bytes) {
        Ok(text) => Some(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            None
        }
    }
}

/// The same groups and checks as the environment, with each error pointed
/// at the file that holds (or should hold) the value.
fn parse(
    values: &Values,
    file_of: impl Fn(&'static str) -> PathBuf,
    whole: &Path,
) -> Result<Arc<Credentials>, ReloadError> {
    let env = EnvCredentials::from_lookup(|name| {
        values.get(name).map(|value| OsString::from(value.as_str()))
    });
    match env {
        Ok(env) => Ok(env.credentials()),
        Err(ConfigError::MissingEnvVar { name }) => Err(ReloadError::MissingField {
            path: file_of(name),
            field: name,
        }),
        Err(ConfigError::InvalidEnvVar { name, reason }) => Err(ReloadError::InvalidField {
            path: file_of(name),
            field: name,
            reason,
        }),
        Err(ConfigError::NoCredentialsInEnv) => Err(ReloadError::NoCredentials {
            path: whole.to_owned(),
        }),
        Err(other) => Err(other.into()),
    }
}

impl CredentialProvider for FileCredentials {
    fn credentials(&self) -> Arc<Credentials> {
        self.shared.publisher.rotating().credentials()
    }

    fn current_id(&self) -> CredentialsId {
        self.shared.publisher.rotating().current_id()
    }

    fn changes(&self) -> Option<watch::Receiver<CredentialsId>> {
        self.shared.publisher.rotating().changes()
    }

    fn credentials_rejected(&self, id: CredentialsId) {
        if id == self.current_id() {
            self.poller.wake();
        }
    }
}

impl fmt::Debug for FileCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileCredentials")
            .field("source", &self.shared.source)
            .field("credentials", &self.credentials())
            .field("last_error", &self.last_error())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Result<Values, ReloadError> {
        let dir = std::env::temp_dir().join(format!(
            "sinch-auth-envfile-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&dir, text).unwrap();
        let result = read_env_file(&dir);
        std::fs::remove_file(&dir).unwrap();
        result
    }

    #[test]
    fn env_file_syntax_comments_export_quotes_and_other_keys() {
        let v = values(
            "# sinch\n\nexport SINCH_KEY_ID = \"kid\"\nSINCH_KEY_SECRET='s=ec'\r\nOTHER=1\nSINCH_PROJECT_ID=p\n",
        )
        .unwrap();
        assert_eq!(v["SINCH_KEY_ID"].as_str(), "kid");
        assert_eq!(v["SINCH_KEY_SECRET"].as_str(), "s=ec");
        assert_eq!(v["SINCH_PROJECT_ID"].as_str(), "p");
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn env_file_line_without_equals_is_named_by_number_not_content() {
        let err = values("SINCH_KEY_ID=k\nSINCH_KEY_SECRET-LEAKED\n").unwrap_err();
        assert!(
            matches!(err, ReloadError::MalformedLine { line: 2, .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("LEAKED"));
    }
}
