//! `FileCredentials`: real files in a temporary directory, a Kubernetes-style
//! atomic symlink swap, half-written and malformed files, polling on tokio's
//! paused clock, and a real OAuth2 round trip against the test kit.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{get, send};
use sinch_auth::testkit::SinchStandIn;
use sinch_auth::token::RefreshConfig;
use sinch_auth::{CredentialProvider, FileCredentials, ReloadError, Scheme, SinchAuthLayer};
use tower::ServiceBuilder;

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "sinch-auth-files-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const KEY_1: &[(&str, &str)] = &[
    ("SINCH_PROJECT_ID", "proj"),
    ("SINCH_KEY_ID", "key-1"),
    ("SINCH_KEY_SECRET", "FILE-SECRET-ONE-f1"),
];
const KEY_2: &[(&str, &str)] = &[
    ("SINCH_PROJECT_ID", "proj"),
    ("SINCH_KEY_ID", "key-2"),
    ("SINCH_KEY_SECRET", "FILE-SECRET-TWO-f2"),
];

fn write_files(dir: &Path, values: &[(&str, &str)]) {
    for (name, value) in values {
        // As `echo` leaves it: one trailing newline, which is ignored.
        std::fs::write(dir.join(name), format!("{value}\n")).unwrap();
    }
}

/// The layout kubelet's atomic writer leaves: the values in `..<timestamp>/`,
/// a `..data` link to it, and one visible link per key through `..data`.
#[cfg(unix)]
fn mount_secret(dir: &Path, version: &str, values: &[(&str, &str)]) {
    use std::os::unix::fs::symlink;
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    write_files(&versioned, values);
    let data = dir.join("..data");
    if std::fs::symlink_metadata(&data).is_ok() {
        // The swap: a new link renamed over `..data` (atomic), then the old
        // version removed, as kubelet does.
        let old = std::fs::read_link(&data).unwrap();
        let tmp = dir.join("..data_tmp");
        symlink(format!("..{version}"), &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    } else {
        symlink(format!("..{version}"), &data).unwrap();
        for (name, _) in values {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
    }
}

fn key_id(provider: &FileCredentials) -> String {
    provider
        .credentials()
        .access_key()
        .unwrap()
        .key_id()
        .to_owned()
}

#[tokio::test]
async fn a_directory_of_one_file_per_variable_is_read_and_reloaded_on_change() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    assert_eq!(key_id(&provider), "key-1");
    let first = provider.current_id();

    assert!(!provider.reload().await.unwrap(), "nothing changed");
    assert_eq!(provider.current_id(), first);

    let mut changes = provider.changes().unwrap();
    write_files(dir.path(), KEY_2);
    assert!(provider.reload().await.unwrap());
    assert_eq!(key_id(&provider), "key-2");
    assert_ne!(provider.current_id(), first);
    assert!(changes.has_changed().unwrap());
    assert_eq!(*changes.borrow_and_update(), provider.current_id());
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_symlink_swap_of_the_mounted_secret_is_seen_whole() {
    let dir = TempDir::new();
    mount_secret(dir.path(), "2024_01_01_00_00_00.1", KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    assert_eq!(key_id(&provider), "key-1");

    mount_secret(dir.path(), "2024_01_01_00_05_00.2", KEY_2);
    assert!(provider.reload().await.unwrap());
    let credentials = provider.credentials();
    let key = credentials.access_key().unwrap();
    assert_eq!(key.key_id(), "key-2");
    use sinch_auth::ExposeSecret as _;
    assert_eq!(key.key_secret().expose_secret(), "FILE-SECRET-TWO-f2");
    assert!(provider.last_error().is_none());
}

/// Kubelet swaps `..data` in one rename, but the visible names are resolved
/// one file at a time: reading them could mix two versions across a swap.
/// Reading everything from the directory `..data` names cannot; here the
/// visible names still hold the old version, and only `..data` the new one.
#[cfg(unix)]
#[tokio::test]
async fn values_come_from_the_one_snapshot_that_data_names() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let snapshot = dir.path().join("..v2");
    std::fs::create_dir(&snapshot).unwrap();
    write_files(&snapshot, KEY_2);
    std::os::unix::fs::symlink("..v2", dir.path().join("..data")).unwrap();
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    assert_eq!(key_id(&provider), "key-2");
}

#[tokio::test]
async fn a_half_written_or_malformed_file_keeps_the_last_good_credentials_and_names_the_file() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    let good = provider.current_id();

    // Truncated, as a writer leaves a file between open and write.
    std::fs::write(dir.path().join("SINCH_KEY_SECRET"), "").unwrap();
    let err = provider.reload().await.unwrap_err();
    match &err {
        ReloadError::InvalidField { path, field, .. } => {
            assert_eq!(*field, "SINCH_KEY_SECRET");
            assert_eq!(path, &dir.path().join("SINCH_KEY_SECRET"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(provider.current_id(), good);
    assert_eq!(key_id(&provider), "key-1");

    // Malformed: a value no header can carry. Its content never shows.
    std::fs::write(
        dir.path().join("SINCH_KEY_SECRET"),
        "LEAKED secret with spaces",
    )
    .unwrap();
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(
            err,
            ReloadError::InvalidField {
                field: "SINCH_KEY_SECRET",
                ..
            }
        ),
        "{err:?}"
    );
    let last = provider.last_error().expect("the failure is observable");
    let shown = format!("{err} {err:?} {last} {provider:?}");
    assert!(shown.contains("SINCH_KEY_SECRET"), "{shown}");
    assert!(!shown.contains("LEAKED"), "{shown}");
    assert!(!shown.contains("FILE-SECRET"), "{shown}");
    assert_eq!(provider.current_id(), good);

    // A group that lost one of its files.
    std::fs::remove_file(dir.path().join("SINCH_KEY_SECRET")).unwrap();
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::MissingField { field: "SINCH_KEY_SECRET", path }
            if path == &dir.path().join("SINCH_KEY_SECRET")),
        "{err:?}"
    );

    // Fixed: the new value is taken and the error cleared.
    write_files(dir.path(), KEY_2);
    assert!(provider.reload().await.unwrap());
    assert_eq!(key_id(&provider), "key-2");
    assert!(provider.last_error().is_none());
}

#[tokio::test]
async fn an_env_style_file_is_read_and_a_broken_rewrite_is_refused_by_line_or_field() {
    let dir = TempDir::new();
    let file = dir.path().join("sinch.env");
    std::fs::write(
        &file,
        "# Sinch\nSINCH_PROJECT_ID=proj\nSINCH_KEY_ID=key-1\nSINCH_KEY_SECRET=\"FILE-SECRET-ONE-f1\"\n",
    )
    .unwrap();
    let provider = FileCredentials::env_file(&file).load().await.unwrap();
    assert_eq!(key_id(&provider), "key-1");
    let good = provider.current_id();

    // Half written: the last line has not arrived yet. A changed file is
    // judged once a second check reads the same bytes.
    std::fs::write(&file, "SINCH_PROJECT_ID=proj\nSINCH_KEY_ID=key-2\n").unwrap();
    assert!(!provider.reload().await.unwrap(), "not settled yet");
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::MissingField { field: "SINCH_KEY_SECRET", path } if path == &file),
        "{err:?}"
    );
    std::fs::write(&file, "SINCH_KEY_ID=key-2\nLEAKED-no-equals-sign\n").unwrap();
    assert!(!provider.reload().await.unwrap(), "not settled yet");
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::MalformedLine { line: 2, path } if path == &file),
        "{err:?}"
    );
    assert!(!err.to_string().contains("LEAKED"));
    assert_eq!(provider.current_id(), good);

    std::fs::write(
        &file,
        "SINCH_PROJECT_ID=proj\nSINCH_KEY_ID=key-2\nSINCH_KEY_SECRET=FILE-SECRET-TWO-f2\n",
    )
    .unwrap();
    assert!(!provider.reload().await.unwrap(), "not settled yet");
    assert!(provider.reload().await.unwrap());
    assert_eq!(key_id(&provider), "key-2");
}

#[tokio::test(start_paused = true)]
async fn the_poller_notices_a_change_within_one_interval_without_being_asked() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let interval = Duration::from_secs(30);
    let provider = FileCredentials::dir(dir.path())
        .poll_interval(interval)
        .load()
        .await
        .unwrap();
    let mut changes = provider.changes().unwrap();
    let started = tokio::time::Instant::now();
    write_files(dir.path(), KEY_2);
    tokio::time::timeout(interval * 2, changes.changed())
        .await
        .expect("seen within one interval")
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(key_id(&provider), "key-2");
    assert!(waited >= interval && waited < interval * 2, "{waited:?}");

    // A broken file seen by the poller is recorded, the good value kept.
    std::fs::write(dir.path().join("SINCH_KEY_ID"), "has:colon").unwrap();
    tokio::time::sleep(interval * 2).await;
    assert!(matches!(
        provider.last_error().as_deref(),
        Some(ReloadError::InvalidField {
            field: "SINCH_KEY_ID",
            ..
        })
    ));
    assert_eq!(key_id(&provider), "key-2");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_of_the_current_credentials_rereads_the_files_before_the_interval() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path())
        .poll_interval(Duration::from_secs(3600))
        .reload_cooldown(Duration::from_secs(1))
        .load()
        .await
        .unwrap();
    let mut changes = provider.changes().unwrap();
    write_files(dir.path(), KEY_2);
    provider.credentials_rejected(provider.current_id());
    tokio::time::timeout(Duration::from_secs(1800), changes.changed())
        .await
        .expect("re-read before the interval")
        .unwrap();
    assert_eq!(key_id(&provider), "key-2");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_clone_stops_the_poller() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path())
        .poll_interval(Duration::from_secs(1))
        .load()
        .await
        .unwrap();
    let clone = provider.clone();
    let mut changes = provider.changes().unwrap();
    drop(provider);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !changes.has_changed().unwrap(),
        "still alive through the clone"
    );
    drop(clone);
    // The task owned the channel's sender: it is gone once the task is.
    let ended = tokio::time::timeout(Duration::from_secs(60), changes.changed())
        .await
        .expect("the poller outlived the last clone");
    assert!(ended.is_err());
}

/// Polls a future to completion on this thread, outside any tokio runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn the_first_load_must_succeed_and_polling_needs_a_runtime() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let err = block_on(FileCredentials::dir(dir.path()).load()).unwrap_err();
    assert!(matches!(err, ReloadError::NoRuntime), "{err:?}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let empty = TempDir::new();
    let err = runtime
        .block_on(FileCredentials::dir(empty.path()).load())
        .unwrap_err();
    assert!(
        matches!(&err, ReloadError::NoCredentials { path } if path == empty.path()),
        "{err:?}"
    );
    for setting in [
        FileCredentials::dir(dir.path()).poll_interval(Duration::ZERO),
        FileCredentials::dir(dir.path()).read_timeout(Duration::ZERO),
    ] {
        let err = runtime.block_on(setting.load()).unwrap_err();
        assert!(matches!(err, ReloadError::Config(_)), "{err:?}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn after_a_swap_the_next_request_fetches_a_token_with_the_new_key() {
    let key1 = sinch_auth::AccessKey::new("proj", "key-1", "FILE-SECRET-ONE-f1").unwrap();
    let key2 = sinch_auth::AccessKey::new("proj", "key-2", "FILE-SECRET-TWO-f2").unwrap();
    let sinch = SinchStandIn::builder()
        .access_key(&key1)
        .access_key(&key2)
        .start()
        .await
        .unwrap();
    let dir = TempDir::new();
    mount_secret(dir.path(), "2024_01_01_00_00_00.1", KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    let layer = SinchAuthLayer::builder(provider.clone())
        .scheme(Scheme::OAuth2)
        .auth_host(&sinch.url())
        .refresh(RefreshConfig::default().hard_cutover(true))
        .build()
        .unwrap();
    let client = ServiceBuilder::new().layer(layer).service(sinch.client());
    let url = format!("{}/v1/numbers", sinch.url());
    let (_, body) = send(&client, get(&url)).await;
    assert!(body.contains("oauth2:key-1"), "{body}");

    mount_secret(dir.path(), "2024_01_01_00_05_00.2", KEY_2);
    assert!(provider.reload().await.unwrap());
    let (_, body) = send(&client, get(&url)).await;
    assert!(body.contains("oauth2:key-2"), "{body}");
    assert_eq!(sinch.token_requests(), 2);
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A FIFO stands in for a file whose read never returns (a hung NFS or FUSE
/// mount). Opening one blocks: on the runtime's only thread, that would stop
/// every task. It is refused without being opened, the runtime keeps going.
#[cfg(unix)]
#[tokio::test]
async fn a_fifo_in_the_directory_is_refused_without_stopping_the_runtime() {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path())
        .poll_interval(Duration::from_millis(20))
        .load()
        .await
        .unwrap();
    let fifo = dir.path().join("SINCH_KEY_SECRET");
    std::fs::remove_file(&fifo).unwrap();
    mkfifo(&fifo);
    // A runtime stuck on the FIFO would never reach the assertions: after a
    // second this thread opens the other end (read-write, which does not
    // block), so a stuck reader returns and the test fails instead of hanging.
    let watchdog = fifo.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        if let Ok(mut end) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&watchdog)
        {
            let _ = end.write_all(b"x\n");
        }
    });

    let beats = Arc::new(AtomicUsize::new(0));
    let counter = beats.clone();
    let heart = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    heart.abort();
    let beats = beats.load(Ordering::SeqCst);
    assert!(beats >= 10, "{beats} heartbeats of ~50 in 500 ms");
    let err = provider.last_error().expect("the poller saw the FIFO");
    assert!(
        matches!(&*err, ReloadError::NotRegularFile { path } if path == &fifo),
        "{err:?}"
    );
    assert_eq!(key_id(&provider), "key-1");

    // The same for an env-style file, at the first load.
    let env = dir.path().join("sinch.env");
    mkfifo(&env);
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        FileCredentials::env_file(&env).load(),
    )
    .await
    .expect("the load returned")
    .unwrap_err();
    assert!(
        matches!(&err, ReloadError::NotRegularFile { path } if path == &env),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_file_larger_than_64_kib_is_refused_naming_it() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    let secret = dir.path().join("SINCH_KEY_SECRET");

    // The most a file may hold is read (the value is a valid secret).
    let at_limit = format!("{}\n", "S".repeat(64 * 1024 - 1));
    std::fs::write(&secret, &at_limit).unwrap();
    assert!(provider.reload().await.unwrap());

    // One byte more is refused, unread; the last good credentials stay.
    let good = provider.current_id();
    std::fs::write(&secret, format!("S{at_limit}")).unwrap();
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::TooLarge { path, limit: 65_536 } if path == &secret),
        "{err:?}"
    );
    std::fs::write(&secret, "S".repeat(32 << 20)).unwrap();
    let err = provider.reload().await.unwrap_err();
    assert!(matches!(err, ReloadError::TooLarge { .. }), "{err:?}");
    assert_eq!(provider.current_id(), good);

    let env = dir.path().join("sinch.env");
    std::fs::write(
        &env,
        format!(
            "SINCH_PROJECT_ID=proj\nSINCH_KEY_ID=k\nSINCH_KEY_SECRET={}\n",
            "S".repeat(70_000)
        ),
    )
    .unwrap();
    let err = FileCredentials::env_file(&env).load().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::TooLarge { path, .. } if path == &env),
        "{err:?}"
    );
}

/// A link planted in the directory to a file elsewhere (`/etc/hostname`,
/// `/dev/zero`) is not followed: every file, through every link, must
/// resolve inside the directory, as Kubernetes' links all do.
#[cfg(unix)]
#[tokio::test]
async fn a_link_out_of_the_directory_is_refused_and_its_target_never_shown() {
    use std::os::unix::fs::symlink;

    let outside = TempDir::new();
    std::fs::write(outside.path().join("hostname"), "OUTSIDE-host\n").unwrap();
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();

    let key_id_file = dir.path().join("SINCH_KEY_ID");
    std::fs::remove_file(&key_id_file).unwrap();
    symlink(outside.path().join("hostname"), &key_id_file).unwrap();
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::OutsideDirectory { path } if path == &key_id_file),
        "{err:?}"
    );
    assert_eq!(key_id(&provider), "key-1");
    let shown = format!("{err} {provider:?}");
    assert!(!shown.contains("OUTSIDE-host"), "{shown}");

    // A relative link climbing out is the same.
    std::fs::remove_file(&key_id_file).unwrap();
    let climb = format!(
        "../{}/hostname",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    symlink(&climb, &key_id_file).unwrap();
    let err = FileCredentials::dir(dir.path()).load().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::OutsideDirectory { path } if path == &key_id_file),
        "{err:?}"
    );

    // A link to a device outside: refused, never read (it would not end).
    std::fs::remove_file(&key_id_file).unwrap();
    symlink("/dev/zero", &key_id_file).unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        FileCredentials::dir(dir.path()).load(),
    )
    .await
    .expect("the load returned")
    .unwrap_err();
    assert!(
        matches!(&err, ReloadError::OutsideDirectory { path } if path == &key_id_file),
        "{err:?}"
    );

    // An env-style file is held to the directory that holds it.
    let env = dir.path().join("sinch.env");
    std::fs::write(
        outside.path().join("sinch.env"),
        "SINCH_PROJECT_ID=proj\nSINCH_KEY_ID=OUTSIDE-id\nSINCH_KEY_SECRET=s\n",
    )
    .unwrap();
    symlink(outside.path().join("sinch.env"), &env).unwrap();
    let err = FileCredentials::env_file(&env).load().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::OutsideDirectory { path } if path == &env),
        "{err:?}"
    );
}

/// Kubernetes' `..data` is a relative link to a sibling directory; an
/// absolute one, or one climbing out, is refused, and so is a link inside
/// the snapshot that leaves the mount.
#[cfg(unix)]
#[tokio::test]
async fn a_data_link_that_is_absolute_or_leaves_the_directory_is_refused() {
    use std::os::unix::fs::symlink;

    let outside = TempDir::new();
    write_files(outside.path(), KEY_2);
    let dir = TempDir::new();
    mount_secret(dir.path(), "2024_01_01_00_00_00.1", KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    let data = dir.path().join("..data");

    let swap = |target: &Path| {
        let tmp = dir.path().join("..data_tmp");
        symlink(target, &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
    };
    // Absolute, even to the snapshot inside the directory.
    swap(&dir.path().join("..2024_01_01_00_00_00.1"));
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::OutsideDirectory { path } if path == &data),
        "{err:?}"
    );
    swap(outside.path());
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(err, ReloadError::OutsideDirectory { .. }),
        "{err:?}"
    );
    // Relative, climbing out.
    let climb = format!(
        "../{}",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    swap(Path::new(&climb));
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::OutsideDirectory { path } if path == &dir.path().join("SINCH_PROJECT_ID")),
        "{err:?}"
    );
    assert_eq!(key_id(&provider), "key-1");

    // A snapshot whose file links out.
    swap(Path::new("..2024_01_01_00_00_00.1"));
    assert!(!provider.reload().await.unwrap());
    let secret = dir
        .path()
        .join("..2024_01_01_00_00_00.1")
        .join("SINCH_KEY_SECRET");
    std::fs::remove_file(&secret).unwrap();
    symlink(outside.path().join("SINCH_KEY_SECRET"), &secret).unwrap();
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::OutsideDirectory { path } if path == &dir.path().join("SINCH_KEY_SECRET")),
        "{err:?}"
    );
    assert_eq!(key_id(&provider), "key-1");
}

const ENV_1: &str =
    "SINCH_PROJECT_ID=proj\nSINCH_KEY_ID=key-1\nSINCH_KEY_SECRET=FILE-SECRET-ONE-f1\n";
const ENV_2: &str =
    "SINCH_PROJECT_ID=proj\nSINCH_KEY_ID=key-2\nSINCH_KEY_SECRET=FILE-SECRET-TWO-f2\n";

/// A rewrite cut inside a value (`>` truncates, then the writer is
/// preempted) would publish a truncated secret: a file without its final
/// newline is not taken, at the first load or later.
#[tokio::test]
async fn an_env_file_cut_inside_a_value_is_not_published() {
    let dir = TempDir::new();
    let file = dir.path().join("sinch.env");
    std::fs::write(&file, ENV_1).unwrap();
    let provider = FileCredentials::env_file(&file).load().await.unwrap();

    let cut = &ENV_2[..ENV_2.len() - 5];
    std::fs::write(&file, cut).unwrap();
    for _ in 0..3 {
        let err = provider.reload().await.unwrap_err();
        assert!(
            matches!(&err, ReloadError::Incomplete { path } if path == &file),
            "{err:?}"
        );
    }
    assert_eq!(key_id(&provider), "key-1");

    let err = FileCredentials::env_file(&file).load().await.unwrap_err();
    assert!(matches!(err, ReloadError::Incomplete { .. }), "{err:?}");
}

/// A writer still appending can stop at a line's end: a changed file is
/// taken only once two checks in a row read the same bytes.
#[tokio::test]
async fn an_env_file_still_being_written_is_taken_once_two_checks_agree() {
    let dir = TempDir::new();
    let file = dir.path().join("sinch.env");
    std::fs::write(&file, ENV_1).unwrap();
    let provider = FileCredentials::env_file(&file).load().await.unwrap();
    let good = provider.current_id();

    // The key group arrived, the application group not yet.
    std::fs::write(&file, ENV_2).unwrap();
    assert!(!provider.reload().await.unwrap());
    let whole =
        format!("{ENV_2}SINCH_APPLICATION_KEY=app\nSINCH_APPLICATION_SECRET=QVBQLVNFQ1JFVA==\n");
    std::fs::write(&file, &whole).unwrap();
    assert!(!provider.reload().await.unwrap());
    assert_eq!(provider.current_id(), good, "nothing taken mid-write");
    assert!(provider.last_error().is_none());

    assert!(provider.reload().await.unwrap());
    assert_eq!(key_id(&provider), "key-2");
    assert!(provider.credentials().application().is_some());
}

#[tokio::test(start_paused = true)]
async fn the_poller_takes_a_changed_env_file_at_the_second_check_that_reads_it() {
    let dir = TempDir::new();
    let file = dir.path().join("sinch.env");
    std::fs::write(&file, ENV_1).unwrap();
    let interval = Duration::from_secs(30);
    let provider = FileCredentials::env_file(&file)
        .poll_interval(interval)
        .load()
        .await
        .unwrap();
    let mut changes = provider.changes().unwrap();
    let started = tokio::time::Instant::now();
    std::fs::write(&file, ENV_2).unwrap();
    tokio::time::timeout(interval * 3, changes.changed())
        .await
        .expect("taken within two intervals")
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= interval * 2 && waited < interval * 3,
        "{waited:?}"
    );
    assert_eq!(key_id(&provider), "key-2");
}

/// A value's file that exists but cannot be read is an error naming it,
/// never taken for an absent value (an optional one would then be dropped
/// silently). Tests may run as root, for whom no mode bit is unreadable:
/// a directory, or a path through a file, stands in.
#[cfg(unix)]
#[tokio::test]
async fn a_value_file_that_cannot_be_read_is_an_error_not_an_absent_value() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    std::fs::write(dir.path().join("SINCH_REGION"), "eu\n").unwrap();
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    let good = provider.current_id();

    let region = dir.path().join("SINCH_REGION");
    std::fs::remove_file(&region).unwrap();
    std::fs::create_dir(&region).unwrap();
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::NotRegularFile { path } if path == &region),
        "{err:?}"
    );
    let err = FileCredentials::dir(dir.path()).load().await.unwrap_err();
    assert!(matches!(err, ReloadError::NotRegularFile { .. }), "{err:?}");

    // `..data` naming a file, not a directory: each value's path fails
    // with "not a directory".
    std::fs::remove_dir(&region).unwrap();
    std::fs::write(dir.path().join("..v1"), "not a directory").unwrap();
    std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
    let err = provider.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::Read { path, kind: std::io::ErrorKind::NotADirectory }
            if path == &dir.path().join("SINCH_PROJECT_ID")),
        "{err:?}"
    );
    assert_eq!(provider.current_id(), good);
}

#[tokio::test]
async fn debug_shows_the_source_the_key_id_and_the_last_error_never_a_secret() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    let shown = format!("{provider:?}");
    assert!(shown.starts_with("FileCredentials"), "{shown}");
    assert!(shown.contains(&format!("{:?}", dir.path())), "{shown}");
    assert!(shown.contains("key-1"), "{shown}");
    assert!(shown.contains("last_error: None"), "{shown}");
    assert!(!shown.contains("FILE-SECRET"), "{shown}");

    std::fs::remove_file(dir.path().join("SINCH_KEY_SECRET")).unwrap();
    provider.reload().await.unwrap_err();
    let shown = format!("{provider:?}");
    assert!(shown.contains("MissingField"), "{shown}");
    assert!(shown.contains("SINCH_KEY_SECRET"), "{shown}");
    assert!(!shown.contains("FILE-SECRET"), "{shown}");

    let file = dir.path().join("sinch.env");
    std::fs::write(&file, ENV_1).unwrap();
    let provider = FileCredentials::env_file(&file).load().await.unwrap();
    let shown = format!("{provider:?}");
    assert!(shown.contains("EnvFile"), "{shown}");
    assert!(shown.contains("sinch.env"), "{shown}");
    assert!(!shown.contains("FILE-SECRET"), "{shown}");
}

/// A failure that lasts is logged once, not at every poll; a different
/// one, or the same one after a recovery, is logged again.
#[tokio::test]
async fn a_lasting_failure_is_logged_once_and_each_new_one_again() {
    let (logs, _guard) = common::LogBuffer::capture();
    let warnings = || logs.text().matches("reloading credentials failed").count();
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path()).load().await.unwrap();
    let secret = dir.path().join("SINCH_KEY_SECRET");

    std::fs::remove_file(&secret).unwrap();
    for _ in 0..3 {
        provider.reload().await.unwrap_err();
    }
    assert_eq!(warnings(), 1, "{}", logs.text());

    write_files(dir.path(), KEY_1);
    std::fs::write(dir.path().join("SINCH_KEY_ID"), "has:colon").unwrap();
    provider.reload().await.unwrap_err();
    provider.reload().await.unwrap_err();
    assert_eq!(warnings(), 2, "{}", logs.text());

    write_files(dir.path(), KEY_1);
    assert!(!provider.reload().await.unwrap());
    std::fs::remove_file(&secret).unwrap();
    provider.reload().await.unwrap_err();
    assert_eq!(warnings(), 3, "{}", logs.text());
    assert!(!logs.text().contains("FILE-SECRET"));
}

/// Settings at the edge of their type: a deadline past what an `Instant`
/// holds saturates, the poller keeps answering hints.
#[tokio::test(start_paused = true)]
async fn a_huge_poll_interval_or_cooldown_does_not_stop_the_poller() {
    let dir = TempDir::new();
    write_files(dir.path(), KEY_1);
    let provider = FileCredentials::dir(dir.path())
        .poll_interval(Duration::MAX)
        .reload_cooldown(Duration::from_secs(1))
        .load()
        .await
        .unwrap();
    let mut changes = provider.changes().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    write_files(dir.path(), KEY_2);
    provider.credentials_rejected(provider.current_id());
    tokio::time::timeout(Duration::from_secs(60), changes.changed())
        .await
        .expect("the hint was served")
        .unwrap();
    assert_eq!(key_id(&provider), "key-2");

    // A huge cooldown: a hint waits no longer than the regular poll.
    let interval = Duration::from_secs(30);
    let provider = FileCredentials::dir(dir.path())
        .poll_interval(interval)
        .reload_cooldown(Duration::MAX)
        .load()
        .await
        .unwrap();
    let mut changes = provider.changes().unwrap();
    provider.credentials_rejected(provider.current_id());
    tokio::time::sleep(Duration::from_secs(1)).await;
    write_files(dir.path(), KEY_1);
    tokio::time::timeout(interval * 2, changes.changed())
        .await
        .expect("the regular poll still ran")
        .unwrap();
    assert_eq!(key_id(&provider), "key-1");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Every `Duration` setting of file credentials at any value: loading,
    /// polling for a while, a 401 hint and a reload never panic; what fails
    /// fails typed (a zero interval or read timeout is a configuration error).
    #[test]
    fn file_settings_at_any_value_never_panic(
        interval in common::any_duration(),
        cooldown in common::any_duration(),
        read_timeout in common::any_duration(),
    ) {
        let dir = TempDir::new();
        write_files(dir.path(), KEY_1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = runtime.block_on(async {
            let loaded = FileCredentials::dir(dir.path())
                .poll_interval(interval)
                .reload_cooldown(cooldown)
                .read_timeout(read_timeout)
                .load()
                .await;
            let credentials = match loaded {
                Ok(credentials) => credentials,
                // A read timeout too short for any read fails typed, naming the file.
                Err(ReloadError::Config(_) | ReloadError::ReadTimeout { .. }) => return Ok(()),
                Err(other) => return Err(format!("load: {other}")),
            };
            let id = credentials.current_id();
            credentials.credentials_rejected(id);
            tokio::time::sleep(Duration::from_millis(5)).await;
            write_files(dir.path(), KEY_2);
            match credentials.reload().await {
                Ok(_) | Err(ReloadError::ReadTimeout { .. }) => {}
                Err(other) => return Err(format!("reload: {other}")),
            }
            Ok(())
        });
        proptest::prop_assert!(outcome.is_ok(), "{:?}", outcome);
    }
}
