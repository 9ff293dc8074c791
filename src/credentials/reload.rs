//! What the reloading providers ([`FileCredentials`](super::FileCredentials),
//! [`PollingCredentials`](super::PollingCredentials)) share: their error, the
//! publishing rule (last good value kept, unchanged content not re-published)
//! and the background poller.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{CredentialProvider, Credentials, RotatingCredentials};
use crate::error::ConfigError;
use crate::token::cache::later;

/// Why reloading credentials failed. The last good credentials stay in use.
///
/// Names the file and the field (the variable name) at fault, never a value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// A credentials file exists but cannot be read.
    #[error("cannot read credentials file {}: {kind}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        kind: io::ErrorKind,
    },
    /// A line of an env-style file is not `KEY=value`.
    #[error("credentials file {} line {line} is not KEY=value", path.display())]
    MalformedLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// A value that its group needs is missing.
    #[error("credentials in {} lack {field}", path.display())]
    MissingField {
        /// The file that should hold it (for a directory: the file named after the field).
        path: PathBuf,
        /// The variable name, for example `SINCH_KEY_SECRET`.
        field: &'static str,
    },
    /// A value is present but unusable.
    #[error("credentials in {}: {field} {reason}", path.display())]
    InvalidField {
        /// The file that holds it.
        path: PathBuf,
        /// The variable name, for example `SINCH_APPLICATION_SECRET`.
        field: &'static str,
        /// What is wrong with it (never the value itself).
        reason: &'static str,
    },
    /// The files hold none of the credential groups.
    #[error("no Sinch credentials in {}", path.display())]
    NoCredentials {
        /// The directory or file that was read.
        path: PathBuf,
    },
    /// A credentials file is not a regular file: a FIFO, a device (such as
    /// `/dev/zero`), a directory or a socket is never read.
    #[error("credentials file {} is not a regular file", path.display())]
    NotRegularFile {
        /// The file, as named in the mounted directory.
        path: PathBuf,
    },
    /// A credentials file holds more than the most a file is read for.
    #[error("credentials file {} holds more than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The most that is read, in bytes.
        limit: usize,
    },
    /// A credentials file, or the `..data` link, resolves outside the
    /// directory that holds it (or `..data` is an absolute link).
    #[error("credentials file {} resolves outside its directory", path.display())]
    OutsideDirectory {
        /// The file or link, as named in the directory.
        path: PathBuf,
    },
    /// An env-style file does not end with a newline: most likely it is
    /// still being written, or a writer stopped part way.
    #[error("credentials file {} does not end with a newline", path.display())]
    Incomplete {
        /// The file.
        path: PathBuf,
    },
    /// Reading the files did not finish in time (a hung network or FUSE
    /// file system, say). Until that read returns, no other one is started.
    #[error("reading credentials file {} did not finish within {timeout:?}", path.display())]
    ReadTimeout {
        /// The file being read when the time ran out.
        path: PathBuf,
        /// The read timeout.
        timeout: Duration,
    },
    /// The user-supplied fetch panicked. Polling goes on; the panic's
    /// message is not kept (it could hold anything).
    #[error("credentials fetch panicked")]
    FetchPanicked,
    /// The user-supplied fetch failed.
    #[error("credentials fetch failed: {0}")]
    Fetch(#[source] Arc<dyn StdError + Send + Sync + 'static>),
    /// The user-supplied fetch did not finish in time.
    #[error("credentials fetch did not finish within {0:?}")]
    Timeout(Duration),
    /// A setting of the provider is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Polling needs a tokio runtime and none is running on this thread.
    #[error("credentials polling must be started inside a tokio runtime")]
    NoRuntime,
}

/// Publishes reloaded credentials through a [`RotatingCredentials`] (its
/// arc-swap and its `changes()` channel), and remembers the last failure.
pub(crate) struct Publisher {
    rotating: RotatingCredentials,
    last_error: ArcSwapOption<ReloadError>,
    what: &'static str,
}

impl Publisher {
    pub(crate) fn new(initial: Arc<Credentials>, what: &'static str) -> Self {
        Self {
            rotating: RotatingCredentials::from(initial),
            last_error: ArcSwapOption::empty(),
            what,
        }
    }

    pub(crate) fn rotating(&self) -> &RotatingCredentials {
        &self.rotating
    }

    /// Offers freshly read credentials: published only when their content
    /// differs from the current bundle's, so an unchanged secret does not
    /// make every derived token be refetched. Returns whether they were.
    pub(crate) fn offer(&self, new: Arc<Credentials>) -> bool {
        self.last_error.store(None);
        if self.rotating.credentials().same_content(&new) {
            return false;
        }
        self.rotating.publish(new);
        true
    }

    /// Records a failure; the current credentials stay. Logged once per
    /// distinct failure, not on every poll while it lasts.
    pub(crate) fn fail(&self, error: ReloadError) -> ReloadError {
        let message = error.to_string();
        let repeated = self
            .last_error
            .load()
            .as_deref()
            .is_some_and(|last| last.to_string() == message);
        if !repeated {
            tracing::warn!(
                target: "sinch_auth",
                provider = self.what,
                error = %message,
                "reloading credentials failed; keeping the last good ones"
            );
        }
        self.last_error.store(Some(Arc::new(error.clone())));
        error
    }

    pub(crate) fn last_error(&self) -> Option<Arc<ReloadError>> {
        self.last_error.load_full()
    }
}

/// The background task of a reloading provider. Dropping it (with the last
/// clone of the provider) ends the task.
pub(crate) struct Poller {
    wake: Arc<Wake>,
    task: AbortHandle,
}

#[derive(Default)]
struct Wake {
    notify: Notify,
    // Whether a reload was asked for since the last one began: a permit
    // left in `notify` by a hint that the last reload already served is
    // ignored, so a burst of hints costs one reload.
    requested: AtomicBool,
}

impl Poller {
    /// Runs `step` every `interval` on the current tokio runtime, and after
    /// a [`wake`](Self::wake), but never sooner than `cooldown` after the
    /// previous step: a burst of hints (401s, say) costs one reload.
    pub(crate) fn spawn<F, Fut>(
        interval: Duration,
        cooldown: Duration,
        mut step: F,
    ) -> Result<Self, ReloadError>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if interval.is_zero() {
            return Err(ConfigError::InvalidSetting {
                setting: "poll interval",
                reason: "must be greater than zero",
            }
            .into());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ReloadError::NoRuntime)?;
        let wake = Arc::new(Wake::default());
        let woken = wake.clone();
        let task = runtime.spawn(async move {
            let mut last = Instant::now();
            loop {
                woken.next(last, interval, cooldown).await;
                // A panic in one step is logged and the polling goes on: a
                // dead poller would keep stale credentials without a word.
                let outcome = match catch_unwind(AssertUnwindSafe(&mut step)) {
                    Ok(future) => CatchPanic(Box::pin(future)).await,
                    Err(payload) => Err(Panicked::from(payload)),
                };
                if outcome.is_err() {
                    tracing::error!(
                        target: "sinch_auth",
                        "reloading credentials panicked; polling goes on"
                    );
                }
                last = Instant::now();
            }
        });
        Ok(Self {
            wake,
            task: task.abort_handle(),
        })
    }

    /// Asks for a reload soon (coalesced, subject to the cooldown).
    pub(crate) fn wake(&self) {
        self.wake.requested.store(true, Ordering::Release);
        self.wake.notify.notify_one();
    }
}

impl Wake {
    /// Waits for the next step: `interval` after the last one, or sooner
    /// after a [`Poller::wake`], but not before `cooldown` has passed. Both
    /// settings may be huge: the deadlines saturate.
    async fn next(&self, last: Instant, interval: Duration, cooldown: Duration) {
        let due = later(last, interval);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(due) => break,
                () = self.notify.notified() => {
                    if self.requested.load(Ordering::Acquire) {
                        // A hint never delays the regular poll.
                        tokio::time::sleep_until(later(last, cooldown).min(due)).await;
                        break;
                    }
                }
            }
        }
        self.requested.store(false, Ordering::Release);
    }
}

/// A panic caught by [`CatchPanic`]; its payload is dropped unread.
pub(crate) struct Panicked;

impl From<Box<dyn std::any::Any + Send>> for Panicked {
    fn from(payload: Box<dyn std::any::Any + Send>) -> Self {
        drop(payload);
        Self
    }
}

/// Polls a future, turning a panic inside it into `Err(Panicked)`.
pub(crate) struct CatchPanic<F: ?Sized>(pub(crate) Pin<Box<F>>);

impl<F: Future + ?Sized> Future for CatchPanic<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future is not polled again after a panic: it is dropped with
        // `self`, and the caller only records that it panicked.
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload.into())),
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A step that panics, in its call or in its future, is logged and the
    /// polling goes on: the next interval runs the next step.
    #[tokio::test(start_paused = true)]
    async fn a_step_that_panics_is_logged_and_the_poller_goes_on() {
        let steps = Arc::new(AtomicUsize::new(0));
        let count = steps.clone();
        let poller = Poller::spawn(Duration::from_secs(10), Duration::from_secs(1), move || {
            let step = count.fetch_add(1, Ordering::SeqCst);
            assert_ne!(step, 0, "a panic in the call");
            async move {
                assert_ne!(step, 1, "a panic in the future");
            }
        })
        .unwrap();
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 3);

        // Hints still reach it, before the next interval.
        poller.wake();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 4);
    }
}
