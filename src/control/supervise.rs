//! One background task per key, kept in line with the current snapshot: the shape shared by
//! health probes, load sources and burst rules.
//!
//! After every reload, `plan` says which keys want a task and with what spec; a task whose key
//! is gone or whose spec changed is stopped, and a new one started; unchanged tasks keep
//! running with their state. A spec usually carries the live object the task writes
//! ([`Bound`]), so a key that came back with a fresh object also gets a fresh task.

use crate::state::{Shared, Snapshot};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A task's spec and the live object it writes. Equal when the specs are equal and the object
/// is the same one (pointer identity), so a task never writes an object no snapshot holds.
#[derive(Debug, Clone)]
pub struct Bound<S, T> {
    pub spec: S,
    pub live: Arc<T>,
}

impl<S: PartialEq, T> PartialEq for Bound<S, T> {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec && Arc::ptr_eq(&self.live, &other.live)
    }
}

/// Runs until `stop` changes (or the reload channel closes), then stops every task.
pub async fn supervise<K: Hash + Eq, C: PartialEq>(
    shared: Arc<Shared>,
    mut reloaded: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
    mut plan: impl FnMut(&Snapshot) -> HashMap<K, C>,
    mut start: impl FnMut(&K, &C) -> Option<JoinHandle<()>>,
) {
    let mut tasks: HashMap<K, (C, JoinHandle<()>)> = HashMap::new();
    loop {
        let want = plan(&shared.load());
        tasks.retain(|key, (spec, handle)| {
            let keep = want.get(key) == Some(spec);
            if !keep {
                handle.abort();
            }
            keep
        });
        for (key, spec) in want {
            if tasks.contains_key(&key) {
                continue;
            }
            if let Some(handle) = start(&key, &spec) {
                tasks.insert(key, (spec, handle));
            }
        }
        tokio::select! {
            _ = stop.changed() => break,
            r = reloaded.changed() => if r.is_err() { break },
        }
    }
    for (_, (_, handle)) in tasks {
        handle.abort();
    }
}
