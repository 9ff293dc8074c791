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
    changes.changed().await.unwrap();
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
    let started = tokio::time::Instant::now();
    provider.credentials_rejected(provider.current_id());
    changes.changed().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3600));
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
