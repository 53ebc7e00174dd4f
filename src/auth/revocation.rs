//! Revocations pushed to every instance: PostgreSQL `LISTEN`, kept up by itself.

use std::{
    convert::Infallible,
    fmt,
    future::poll_fn,
    sync::Arc,
    time::{Duration, SystemTime},
};

use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::{interval, sleep, timeout, MissedTickBehavior},
};
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::KeyDigest;

/// How often the watch asks the database for keys that expired (and so whether it is alive).
const TICK: Duration = Duration::from_secs(1);
/// How long that question may take before the connection is taken for dead.
const TICK_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

pub(crate) struct Watch {
    pub(crate) config: Config,
    pub(crate) listen: String,
    pub(crate) expired: String,
    pub(crate) ttl: Duration,
    pub(crate) forget: Arc<dyn Fn(&KeyDigest) + Send + Sync>,
    pub(crate) forget_all: Arc<dyn Fn() + Send + Sync>,
}

/// Keeps a [`CachedKeyStore`](super::CachedKeyStore) in step with a
/// [`PostgresKeyStore`](super::PostgresKeyStore): started by
/// [`PostgresKeyStore::watch`](super::PostgresKeyStore::watch), stopped when dropped.
///
/// While it listens, a changed key is forgotten by the cache within milliseconds of the
/// change's commit. When the connection is lost it logs a warning (the cache now keeps keys
/// for its TTL), retries with a growing delay (100 ms to 5 s), and on reconnecting forgets
/// everything the cache holds, since changes may have been missed meanwhile.
pub struct RevocationWatch {
    task: JoinHandle<()>,
    listening: watch::Receiver<bool>,
}

impl RevocationWatch {
    /// Whether notifications are being received now.
    pub fn is_listening(&self) -> bool {
        *self.listening.borrow()
    }

    /// Waits until notifications are being received (at once if they are).
    pub async fn listening(&self) {
        let mut listening = self.listening.clone();
        // The sender lives as long as the task, which runs until the watch is dropped.
        let _ = listening.wait_for(|up| *up).await;
    }

    /// Waits until the channel is down (at once if it is).
    pub async fn down(&self) {
        let mut listening = self.listening.clone();
        let _ = listening.wait_for(|up| !*up).await;
    }
}

impl Drop for RevocationWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for RevocationWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationWatch")
            .field("listening", &self.is_listening())
            .finish()
    }
}

pub(crate) fn spawn(watch: Watch) -> RevocationWatch {
    let (state, listening) = watch::channel(false);
    let task = tokio::spawn(run(watch, state));
    RevocationWatch { task, listening }
}

async fn run(watch: Watch, state: watch::Sender<bool>) {
    let mut retry = FIRST_RETRY;
    let mut warned = false;
    loop {
        let mut up = false;
        let Err(error) = listen(&watch, &state, &mut up, warned).await;
        state.send_replace(false);
        if up {
            retry = FIRST_RETRY;
            warned = false;
        }
        if warned {
            tracing::debug!(%error, "key revocation channel still down; retrying in {retry:?}");
        } else {
            tracing::warn!(
                %error,
                "key revocation channel is down: cached keys are kept for their TTL ({:?}) \
                 until it is back; reconnecting",
                watch.ttl
            );
            warned = true;
        }
        sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// Listens until the connection fails; never returns otherwise. Sets `up` once listening.
async fn listen(
    watch: &Watch,
    state: &watch::Sender<bool>,
    up: &mut bool,
    was_down: bool,
) -> Result<Infallible, String> {
    let (client, mut connection) = watch
        .config
        .connect(NoTls)
        .await
        .map_err(|error| error.to_string())?;
    let (notes, mut notified) = mpsc::unbounded_channel();
    // The connection delivers notifications only while it is polled: a task of its own does
    // that and hands them over; it ends (closing the channel) when the connection does.
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if notes.send(note.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => return error.to_string(),
            }
        }
        "connection closed".to_owned()
    });
    let _abort = AbortOnDrop(&driver);

    client
        .batch_execute(&watch.listen)
        .await
        .map_err(|error| error.to_string())?;
    let mut since: SystemTime = client
        .query_one("SELECT now()", &[])
        .await
        .map_err(|error| error.to_string())?
        .get(0);
    // Whatever changed while nobody listened is unknown: forget it all.
    (watch.forget_all)();
    state.send_replace(true);
    *up = true;
    if was_down {
        tracing::info!("key revocation channel is back: changed keys are forgotten at once again");
    }

    let mut tick = interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            note = notified.recv() => match note {
                Some(payload) => match KeyDigest::from_hex(&payload) {
                    Some(digest) => (watch.forget)(&digest),
                    None => (watch.forget_all)(),
                },
                None => return Err("connection closed".to_owned()),
            },
            _ = tick.tick() => {
                let rows = timeout(TICK_TIMEOUT, client.query(&watch.expired, &[&since]))
                    .await
                    .map_err(|_| "the database did not answer in time".to_owned())?
                    .map_err(|error| error.to_string())?;
                for row in &rows {
                    since = row.get(0);
                    if let Some(digest) = row.get::<_, Option<&[u8]>>(1) {
                        match <[u8; 32]>::try_from(digest) {
                            Ok(bytes) => (watch.forget)(&KeyDigest::from_bytes(bytes)),
                            Err(_) => (watch.forget_all)(),
                        }
                    }
                }
            }
        }
    }
}

struct AbortOnDrop<'a, T>(&'a JoinHandle<T>);

impl<T> Drop for AbortOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
