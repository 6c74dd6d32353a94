//! Shared by the push targets: appends decoded streams to a store in a
//! temporary directory, checkpoints now and then, and reads everything back,
//! so no input reaching the store can make it panic. The store is replaced
//! every few thousand inputs to keep memory and disk bounded.

use std::cell::RefCell;

use logstore::{FsyncPolicy, LogStore, LogStoreOptions, PushStream};

/// The time appends are validated against; retention and the future limit are
/// set so wide that any timestamp the decoders produce is accepted.
const NOW: i64 = 1_795_651_200_000_000_000;
const INPUTS_PER_STORE: u32 = 2000;

struct Fixture {
    _directory: tempfile::TempDir,
    store: LogStore,
    inputs: u32,
}

fn fixture() -> Fixture {
    let directory = tempfile::tempdir().expect("temporary directory");
    let options = LogStoreOptions {
        fsync: FsyncPolicy::Never,
        chunk_target_bytes: 1024,
        retention_time: std::time::Duration::from_secs(u64::MAX / 4),
        max_future: std::time::Duration::from_secs(u64::MAX / 4),
        ..LogStoreOptions::default()
    };
    let (store, _) = LogStore::open(directory.path(), options).expect("open store");
    Fixture { _directory: directory, store, inputs: 0 }
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

pub fn append(streams: Vec<PushStream>) {
    FIXTURE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|fixture| fixture.inputs >= INPUTS_PER_STORE) {
            *slot = None;
            *slot = Some(fixture());
        }
        let Some(fixture) = slot.as_mut() else { return };
        fixture.inputs += 1;
        let store = &fixture.store;
        let stats = store.append_at(streams, NOW).expect("append");
        let _ = stats.loki_message();
        if fixture.inputs % 500 == 0 {
            store.checkpoint().expect("checkpoint");
        }
        let mut visited = 0u64;
        logql::LogSource::select(store, &[], i64::MIN, i64::MAX, &mut |_, _| visited += 1).expect("select");
        // `end` is exclusive: an entry at i64::MAX is stored but not selected.
        assert!(visited <= store.stats().entries);
    });
}
