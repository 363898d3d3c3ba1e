//! One background task per key, kept in line with the current snapshot: the shape shared by
//! health probes, load sources and burst rules.
//!
//! After every reload, `plan` says which keys want a task and with what spec; a task whose key
//! is gone or whose spec changed is stopped, and a new one started; unchanged tasks keep
//! running with their state. Anything keyed by the same names outside the tasks (probe
//! results, loads) is the caller's to prune inside `plan`.

use crate::state::{Shared, Snapshot};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Runs until `stop` changes (or the reload channel closes), then stops every task.
pub async fn supervise<C: PartialEq>(
    shared: Arc<Shared>,
    mut reloaded: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
    mut plan: impl FnMut(&Snapshot) -> HashMap<String, C>,
    mut start: impl FnMut(&str, &C) -> Option<JoinHandle<()>>,
) {
    let mut tasks: HashMap<String, (C, JoinHandle<()>)> = HashMap::new();
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
