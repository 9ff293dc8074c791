use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use zeroize::Zeroizing;

use super::env::VARIABLES;
use super::reload::{Poller, Publisher, ReloadError};
use super::{CredentialProvider, Credentials, CredentialsId, EnvCredentials};
use crate::error::ConfigError;
use crate::verify::Rotation;

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
///     .load()
///     .await?;
/// let layer = SinchAuthLayer::by_host(provider)?;
/// # Ok(()) }
/// ```
///
/// # What is read, and how
///
/// The files are read on tokio's blocking pool, never on a runtime thread,
/// under a [`read_timeout`](FileCredentialsBuilder::read_timeout) (default
/// 5 s): a hung network or FUSE file system costs one blocking thread, and no
/// new read starts until that one returns ([`ReloadError::ReadTimeout`]
/// names the file). Only regular files are read, at most 64 KiB each (a FIFO
/// or a device is [`ReloadError::NotRegularFile`], a larger file
/// [`ReloadError::TooLarge`]). Every file, with every link on its way,
/// must resolve inside the directory given to [`dir`](Self::dir) (for
/// [`env_file`](Self::env_file): the directory holding the file), as
/// Kubernetes' links all do; `..data` must be a relative link
/// ([`ReloadError::OutsideDirectory`] otherwise).
///
/// An env-style file is taken only when it ends with a newline
/// ([`ReloadError::Incomplete`] otherwise), and a changed one only once two
/// checks in a row (two polls, or two [`reload`](Self::reload)s) read the
/// same bytes: a rewrite in progress is not published half done. Replace the
/// file atomically all the same: write a temporary file in the same
/// directory, then rename it over the old one (`mv`, not `>`), so that no
/// reader ever sees a partial file.
#[derive(Clone)]
pub struct FileCredentials {
    shared: Arc<Shared>,
    poller: Arc<Poller>,
}

struct Shared {
    source: Source,
    publisher: Publisher,
    reader: Reader,
    // An env-style file's bytes at the last check: a change is taken once
    // two checks in a row agree on it.
    last_seen: Mutex<Option<Bytes>>,
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
    read_timeout: Duration,
}

/// The most a credentials file may hold. A secret is tens of bytes; a file
/// above this is refused rather than read (a link to `/dev/zero` would
/// otherwise be read until memory runs out).
const MAX_FILE_BYTES: usize = 64 * 1024;

type Bytes = Zeroizing<Vec<u8>>;

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
    /// changed, or an env-style file changed since the last check and waits
    /// for the next one to agree; on error the last good credentials stay
    /// in use.
    pub async fn reload(&self) -> Result<bool, ReloadError> {
        self.shared.reload().await
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
            read_timeout: Duration::from_secs(5),
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

    /// How long reading the files may take before the check counts as
    /// failed (default 5 s; [`ReloadError::ReadTimeout`]).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Reads the files (an error if they do not hold usable credentials) and
    /// starts polling them on the current tokio runtime
    /// ([`ReloadError::NoRuntime`] outside one).
    pub async fn load(self) -> Result<FileCredentials, ReloadError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ReloadError::NoRuntime);
        }
        if self.read_timeout.is_zero() {
            return Err(ConfigError::InvalidSetting {
                setting: "read timeout",
                reason: "must be greater than zero",
            }
            .into());
        }
        let reader = Reader::new(self.read_timeout);
        let (initial, seen) = read(&self.source, &reader).await?;
        let initial = initial?;
        let shared = Arc::new(Shared {
            source: self.source,
            publisher: Publisher::new(initial, "file credentials"),
            reader,
            last_seen: Mutex::new(seen),
        });
        let task = shared.clone();
        let poller = Poller::spawn(self.interval, self.cooldown, move || {
            let task = task.clone();
            async move {
                // The outcome is recorded in `last_error`.
                let _ = task.reload().await;
            }
        })?;
        Ok(FileCredentials {
            shared,
            poller: Arc::new(poller),
        })
    }
}

impl Shared {
    async fn reload(&self) -> Result<bool, ReloadError> {
        match self.check().await {
            Ok(Some(credentials)) => Ok(self.publisher.offer(credentials)),
            Ok(None) => Ok(false),
            Err(error) => Err(self.publisher.fail(error)),
        }
    }

    /// The credentials the files hold now, or `None` while a changed
    /// env-style file waits for a second check to agree.
    async fn check(&self) -> Result<Option<Arc<Credentials>>, ReloadError> {
        let (credentials, seen) = read(&self.source, &self.reader).await?;
        if let Some(seen) = seen {
            let mut last = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            if last.as_deref() != Some(&*seen) {
                *last = Some(seen);
                return Ok(None);
            }
        }
        credentials.map(Some)
    }
}

type Values = HashMap<&'static str, Zeroizing<String>>;

/// Reads and parses the source; for an env-style file, also its bytes (the
/// parse may fail while the bytes still count as seen).
async fn read(
    source: &Source,
    reader: &Reader,
) -> Result<(Result<Arc<Credentials>, ReloadError>, Option<Bytes>), ReloadError> {
    match source {
        Source::Dir(dir) => {
            let path = dir.clone();
            let values = reader
                .run(dir, move |at| read_dir(&path, at, || {}))
                .await?;
            Ok((parse(&values, |field| dir.join(field), dir), None))
        }
        Source::EnvFile(path) => {
            let file = path.clone();
            let bytes = reader
                .run(path, move |at| {
                    let root = path_root(file.parent().unwrap_or(Path::new("/")), &file)?;
                    read_file(&file, &root, &file, at)?.ok_or_else(|| ReloadError::Read {
                        path: file.clone(),
                        kind: io::ErrorKind::NotFound,
                    })
                })
                .await?;
            if bytes.last() != Some(&b'\n') {
                return Err(ReloadError::Incomplete { path: path.clone() });
            }
            let parsed = read_env_file(path, bytes.clone())
                .and_then(|values| parse(&values, |_| path.clone(), path));
            Ok((parsed, Some(bytes)))
        }
    }
}

/// Runs the blocking reads on tokio's blocking pool, one at a time, under a
/// timeout. The permit travels with the read: a read stuck past its timeout
/// keeps it, so a hung file system holds one blocking thread, not one more
/// per poll.
struct Reader {
    timeout: Duration,
    permit: Arc<Semaphore>,
    // The file the current read is at, to name when it times out.
    at: Arc<Mutex<PathBuf>>,
}

/// Where a read is: the blocking side records each file before touching it.
struct At(Arc<Mutex<PathBuf>>);

impl At {
    fn set(&self, path: &Path) {
        path.clone_into(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl Reader {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            permit: Arc::new(Semaphore::new(1)),
            at: Arc::new(Mutex::new(PathBuf::new())),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        source: &Path,
        read: impl FnOnce(&At) -> Result<T, ReloadError> + Send + 'static,
    ) -> Result<T, ReloadError> {
        let at = self.at.clone();
        let permit = self.permit.clone();
        let work = async move {
            // Never closed: an error here cannot happen, and reads as busy.
            let permit = permit.acquire_owned().await.ok()?;
            let job = tokio::task::spawn_blocking(move || {
                let _one_at_a_time = permit;
                read(&At(at))
            });
            Some(job.await)
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Some(Ok(result))) => result,
            // The read panicked (a bug): report it as an unreadable source.
            Ok(Some(Err(_))) | Ok(None) => Err(ReloadError::Read {
                path: source.to_owned(),
                kind: io::ErrorKind::Other,
            }),
            Err(_) => Err(ReloadError::ReadTimeout {
                path: self.at.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                timeout: self.timeout,
            }),
        }
    }
}

/// The directory every file must resolve into, with its links resolved.
fn path_root(dir: &Path, shown: &Path) -> Result<PathBuf, ReloadError> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir).map_err(|e| ReloadError::Read {
        path: shown.to_owned(),
        kind: e.kind(),
    })
}

/// Reads one file, `Ok(None)` when it does not exist. `path` is where it is
/// read from, `shown` how errors name it. Refused: a file resolving outside
/// `root`, anything but a regular file, more than [`MAX_FILE_BYTES`].
fn read_file(
    path: &Path,
    root: &Path,
    shown: &Path,
    at: &At,
) -> Result<Option<Bytes>, ReloadError> {
    at.set(shown);
    let error = |e: io::Error| ReloadError::Read {
        path: shown.to_owned(),
        kind: e.kind(),
    };
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        // Absent, or a link to nothing (a key the Secret no longer has).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(e)),
    };
    if !real.starts_with(root) {
        return Err(ReloadError::OutsideDirectory {
            path: shown.to_owned(),
        });
    }
    let not_regular = || ReloadError::NotRegularFile {
        path: shown.to_owned(),
    };
    // Checked before opening: opening a FIFO blocks until a writer comes.
    let len = std::fs::metadata(&real).map_err(error)?;
    if !len.is_file() {
        return Err(not_regular());
    }
    let file = match std::fs::File::open(&real) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(e)),
    };
    // The name may have been replaced between the check and the open.
    if !file.metadata().map_err(error)?.is_file() {
        return Err(not_regular());
    }
    let expected = usize::try_from(len.len())
        .unwrap_or(usize::MAX)
        .min(MAX_FILE_BYTES);
    let mut bytes = Zeroizing::new(Vec::with_capacity(expected.saturating_add(1)));
    let limit = u64::try_from(MAX_FILE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit).read_to_end(&mut bytes).map_err(error)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ReloadError::TooLarge {
            path: shown.to_owned(),
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(Some(bytes))
}

/// Kubernetes writes a Secret's files into a fresh `..<timestamp>` directory,
/// then renames a `..data` symlink onto it; the visible names are links
/// through `..data`. Reading everything from the directory `..data` names,
/// and checking it still names it afterwards, gives one consistent snapshot.
/// `between` runs after each pass over the files (tests swap `..data` there).
fn read_dir(dir: &Path, at: &At, mut between: impl FnMut()) -> Result<Values, ReloadError> {
    at.set(dir);
    let root = path_root(dir, dir)?;
    let data = dir.join("..data");
    let mut attempts = 0;
    loop {
        let before = data_link(&data)?;
        let base = before
            .as_ref()
            .map_or_else(|| dir.to_owned(), |t| dir.join(t));
        let mut values = Values::new();
        for &field in VARIABLES {
            let shown = dir.join(field);
            let Some(bytes) = read_file(&base.join(field), &root, &shown, at)? else {
                continue;
            };
            let text = utf8(bytes).ok_or_else(|| ReloadError::InvalidField {
                path: shown,
                field,
                reason: "is not valid UTF-8",
            })?;
            let value = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            values.insert(field, Zeroizing::new(value.to_owned()));
        }
        between();
        if data_link(&data)? == before {
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

/// Where `..data` points, `None` when it is not a link. Kubernetes' is
/// relative; an absolute one could point anywhere and is refused.
fn data_link(data: &Path) -> Result<Option<PathBuf>, ReloadError> {
    match std::fs::read_link(data) {
        Ok(target) if target.has_root() => Err(ReloadError::OutsideDirectory {
            path: data.to_owned(),
        }),
        Ok(target) => Ok(Some(target)),
        Err(_) => Ok(None),
    }
}

fn read_env_file(path: &Path, bytes: Bytes) -> Result<Values, ReloadError> {
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

fn utf8(mut bytes: Bytes) -> Option<Zeroizing<String>> {
    match String::from_utf8(std::mem::take(&mut *bytes)) {
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

    fn last_rotation(&self) -> Option<Rotation<Credentials>> {
        self.shared.publisher.rotating().last_rotation()
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
        read_env_file(
            Path::new("sinch.env"),
            Zeroizing::new(text.as_bytes().to_vec()),
        )
    }

    /// A directory removed when the test ends.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "sinch-auth-file-unit-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `..v1` and `..v2` holding key ids `key-1` and `key-2`, `..data` on
    /// `..v1`.
    #[cfg(unix)]
    fn two_versions() -> TempDir {
        let dir = TempDir::new();
        for version in ["1", "2"] {
            let versioned = dir.0.join(format!("..v{version}"));
            std::fs::create_dir(&versioned).unwrap();
            for (name, value) in [
                ("SINCH_PROJECT_ID", "proj".to_owned()),
                ("SINCH_KEY_ID", format!("key-{version}")),
                ("SINCH_KEY_SECRET", format!("SECRET-{version}")),
            ] {
                std::fs::write(versioned.join(name), value).unwrap();
            }
        }
        std::os::unix::fs::symlink("..v1", dir.0.join("..data")).unwrap();
        dir
    }

    #[cfg(unix)]
    fn swap_data(dir: &Path, to: &str) {
        let tmp = dir.join("..data_tmp");
        std::os::unix::fs::symlink(to, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
    }

    fn at() -> At {
        At(Arc::new(Mutex::new(PathBuf::new())))
    }

    #[cfg(unix)]
    #[test]
    fn a_data_swap_during_a_read_makes_it_read_again_from_the_new_version() {
        let dir = two_versions();
        let mut passes = 0;
        let values = read_dir(&dir.0, &at(), || {
            passes += 1;
            if passes == 1 {
                swap_data(&dir.0, "..v2");
            }
        })
        .unwrap();
        assert_eq!(passes, 2);
        assert_eq!(values["SINCH_KEY_ID"].as_str(), "key-2");
        assert_eq!(values["SINCH_KEY_SECRET"].as_str(), "SECRET-2");
    }

    #[cfg(unix)]
    #[test]
    fn a_read_gives_up_after_data_is_swapped_under_it_three_times() {
        let dir = two_versions();
        let mut passes = 0;
        let err = read_dir(&dir.0, &at(), || {
            passes += 1;
            swap_data(&dir.0, if passes % 2 == 1 { "..v2" } else { "..v1" });
        })
        .unwrap_err();
        assert_eq!(passes, 3);
        assert!(
            matches!(&err, ReloadError::Read { path, kind: io::ErrorKind::Interrupted }
                if path == &dir.0.join("..data")),
            "{err:?}"
        );

        // Swapped twice, then left alone: the third pass is taken.
        let mut passes = 0;
        let values = read_dir(&dir.0, &at(), || {
            passes += 1;
            if passes <= 2 {
                swap_data(&dir.0, if passes == 1 { "..v1" } else { "..v2" });
            }
        })
        .unwrap();
        assert_eq!(passes, 3);
        assert_eq!(values["SINCH_KEY_ID"].as_str(), "key-2");
    }

    #[tokio::test]
    async fn a_read_past_its_timeout_names_the_file_and_holds_back_the_next_read() {
        let reader = Reader::new(Duration::from_millis(100));
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = started.clone();
        let err = reader
            .run(Path::new("/mnt"), move |at| {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                at.set(Path::new("/mnt/SINCH_KEY_SECRET"));
                // A read that hangs, as on a dead NFS server.
                let _ = stuck.recv();
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ReloadError::ReadTimeout { path, timeout }
                if path == Path::new("/mnt/SINCH_KEY_SECRET")
                    && *timeout == Duration::from_millis(100)),
            "{err:?}"
        );

        // While the first read hangs, the next does not start another one.
        let count = started.clone();
        let err = reader
            .run(Path::new("/mnt"), move |_| {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ReloadError::ReadTimeout { .. }), "{err:?}");
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Once it returns, reads go on.
        release.send(()).unwrap();
        let count = started.clone();
        tokio::time::timeout(
            Duration::from_secs(5),
            reader.run(Path::new("/mnt"), move |_| {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 2);
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
