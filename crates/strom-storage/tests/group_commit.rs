//! Group commit (durable mode, `flush.before.ack.enable`) on the simulated disk: appenders on
//! several partitions of one log dir acknowledge an append only once a flusher round covering
//! it has finished; a power loss (`SimFs::crash`, torn sectors on) then keeps every
//! acknowledged record, while the same load acknowledged on append (Kafka's default, no
//! fsync) loses records. A failed fsync acknowledges nothing it did not cover.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_storage::{
    Fault, FaultOp, FlushTarget, Fs, GroupCommit, LogConfig, ManualClock, PartitionLog, SimFs,
};

const PARTITIONS: usize = 4;
const APPENDERS_PER_PARTITION: usize = 2;
const APPENDS_EACH: usize = 60;

fn batch(id: usize) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    b.push(Some(id.to_string().as_bytes()), Some(&[7u8; 200]), 1_000);
    b.build()
}

fn config(durable: bool) -> LogConfig {
    LogConfig {
        // Small segments: rolls happen under load and must not lose what was acknowledged.
        segment_bytes: 4_000,
        retention_ms: -1,
        flush_before_ack: durable,
        ..LogConfig::default()
    }
}

fn open(fs: &Arc<SimFs>, p: usize, durable: bool) -> Arc<PartitionLog> {
    let fs: Arc<dyn Fs> = fs.clone();
    let clock = Arc::new(ManualClock::new(1_000));
    let dir = PathBuf::from(format!("/data/t-{p}"));
    Arc::new(PartitionLog::open_with_fs(dir, config(durable), clock, fs).unwrap())
}

/// Runs the load; returns, per partition, the highest offset acknowledged (exclusive end).
/// Durable: each append waits for the round `submit` names and is acknowledged only if the
/// log's flushed offset passed it. Otherwise acknowledged as soon as it is written.
fn load(logs: &[Arc<PartitionLog>], flusher: Option<&GroupCommit>) -> Vec<i64> {
    let acked: Vec<Mutex<i64>> = logs.iter().map(|_| Mutex::new(0)).collect();
    std::thread::scope(|scope| {
        for (p, log) in logs.iter().enumerate() {
            for a in 0..APPENDERS_PER_PARTITION {
                let acked = &acked[p];
                scope.spawn(move || {
                    for i in 0..APPENDS_EACH {
                        let Ok(info) = log.append(batch(a * APPENDS_EACH + i)) else {
                            return;
                        };
                        if let Some(flusher) = flusher {
                            let target: Arc<dyn FlushTarget> = log.clone();
                            flusher.wait(flusher.submit(target));
                            if log.flushed_offset() <= info.last_offset {
                                continue; // not acknowledged: the fsync failed
                            }
                        }
                        let mut high = acked.lock();
                        *high = (*high).max(info.last_offset + 1);
                    }
                });
            }
        }
    });
    acked.into_iter().map(Mutex::into_inner).collect()
}

/// Records acknowledged but missing after a power loss and a reopen of each log.
fn lost_after_power_loss(fs: &Arc<SimFs>, acked: &[i64], durable: bool) -> i64 {
    fs.crash();
    (0..acked.len())
        .map(|p| {
            let log = open(fs, p, durable);
            (acked[p] - log.log_end_offset()).max(0)
        })
        .sum()
}

/// The durable load on 4 partitions, a power loss, every acknowledged record checked; with
/// `writeback` > 0, early writeback at that threshold runs beside the rounds. Returns the
/// early-writeback flushes done.
fn durable_load_survives_power_loss(seed: u64, writeback: u64) -> u64 {
    let fs = Arc::new(SimFs::new(seed));
    fs.set_tearing(true);
    let logs: Vec<_> = (0..PARTITIONS).map(|p| open(&fs, p, true)).collect();
    let flusher = GroupCommit::default().with_early_writeback(writeback);
    let acked = std::thread::scope(|scope| {
        scope.spawn(|| flusher.run());
        if writeback > 0 {
            scope.spawn(|| flusher.run_writeback());
        }
        let acked = load(&logs, Some(&flusher));
        flusher.stop();
        acked
    });
    let appends = (PARTITIONS * APPENDERS_PER_PARTITION * APPENDS_EACH) as u64;
    assert_eq!(
        acked.iter().sum::<i64>(),
        appends as i64,
        "every append acknowledged"
    );
    // Group commit: the appends that arrived during one round share the next one.
    let rounds = flusher.finished();
    assert!(
        rounds < appends,
        "{rounds} rounds for {appends} appends: fsyncs are shared"
    );
    drop(logs);
    let lost = lost_after_power_loss(&fs, &acked, true);
    let writebacks = flusher.writebacks();
    eprintln!(
        "seed {seed}: {appends} appends in {rounds} rounds, {writebacks} early writebacks, \
         {lost} acknowledged lost"
    );
    assert_eq!(lost, 0, "seed {seed}");
    writebacks
}

#[test]
fn durable_mode_keeps_every_acknowledged_record_across_a_power_loss() {
    for seed in 1..=3 {
        assert_eq!(durable_load_survives_power_loss(seed, 0), 0);
    }
}

#[test]
fn early_writeback_keeps_every_acknowledged_record_across_a_power_loss() {
    // ~270-byte batches, 4,000-byte segments: a writeback every ~4 appends to a partition,
    // some of them racing the rounds and the rolls.
    for seed in 4..=6 {
        let writebacks = durable_load_survives_power_loss(seed, 1_000);
        assert!(writebacks > 0, "seed {seed}: early writeback ran");
    }
}

#[test]
fn a_failed_early_writeback_takes_the_log_offline_before_any_acknowledgement() {
    let fs = Arc::new(SimFs::new(9));
    let log = open(&fs, 0, true);
    // Every submit with a new byte is due.
    let flusher = GroupCommit::default().with_early_writeback(1);
    std::thread::scope(|scope| {
        scope.spawn(|| flusher.run_writeback());
        fs.inject(Fault::new(FaultOp::Sync, 5).path("t-0").times(1));
        let a = log.append(batch(1)).unwrap();
        let round = flusher.submit(log.clone() as Arc<dyn FlushTarget>);
        // Only the writeback loop runs so far: it meets the failing fsync.
        while flusher.writebacks() == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            log.is_offline(),
            "a failed writeback fsync takes the log offline"
        );
        // The round that would acknowledge the append: the log stays short of it.
        scope.spawn(|| flusher.run());
        flusher.wait(round);
        assert!(log.flushed_offset() <= a.last_offset, "not acknowledged");
        flusher.stop();
    });
}

#[test]
fn acknowledging_on_append_loses_records_at_a_power_loss() {
    let fs = Arc::new(SimFs::new(7));
    fs.set_tearing(true);
    let logs: Vec<_> = (0..PARTITIONS).map(|p| open(&fs, p, false)).collect();
    let acked = load(&logs, None);
    drop(logs);
    let lost = lost_after_power_loss(&fs, &acked, false);
    eprintln!(
        "acknowledged on append: {} acknowledged, {lost} lost",
        acked.iter().sum::<i64>()
    );
    assert!(
        lost > 0,
        "without fsync before the acknowledgement a power loss loses acknowledged records"
    );
}

#[test]
fn a_failed_group_fsync_acknowledges_nothing_it_did_not_cover() {
    let fs = Arc::new(SimFs::new(3));
    let logs: Vec<_> = (0..2).map(|p| open(&fs, p, true)).collect();
    let flusher = GroupCommit::default();
    std::thread::scope(|scope| {
        scope.spawn(|| flusher.run());
        let ok = logs[0].append(batch(1)).unwrap();
        let target: Arc<dyn FlushTarget> = logs[0].clone();
        flusher.wait(flusher.submit(target));
        assert!(logs[0].flushed_offset() > ok.last_offset);

        // The next fsync of partition 1 fails: its append is not durable, partition 0's is.
        fs.inject(Fault::new(FaultOp::Sync, 5).path("t-1").times(1));
        let a = logs[0].append(batch(2)).unwrap();
        let b = logs[1].append(batch(3)).unwrap();
        let rounds: Vec<_> = logs
            .iter()
            .map(|l| flusher.submit(l.clone() as Arc<dyn FlushTarget>))
            .collect();
        rounds.iter().for_each(|r| flusher.wait(*r));
        assert!(logs[0].flushed_offset() > a.last_offset);
        assert!(logs[1].flushed_offset() <= b.last_offset);
        assert!(logs[1].is_offline(), "a failed fsync takes the log offline");
        flusher.stop();
    });
}

#[test]
fn a_round_over_many_logs_fsyncs_each_one_and_a_failure_stays_with_its_log() {
    let fs = Arc::new(SimFs::new(11));
    fs.set_tearing(true);
    let logs: Vec<_> = (0..12).map(|p| open(&fs, p, true)).collect();
    let ends: Vec<i64> = logs
        .iter()
        .map(|l| l.append(batch(1)).unwrap().last_offset + 1)
        .collect();
    // Partition 5's fsync fails; all twelve are submitted before the flusher starts, so one
    // round holds them all.
    fs.inject(Fault::new(FaultOp::Sync, 5).path("t-5/").times(1));
    let flusher = GroupCommit::default();
    let rounds: Vec<_> = logs
        .iter()
        .map(|l| flusher.submit(l.clone() as Arc<dyn FlushTarget>))
        .collect();
    assert!(rounds.iter().all(|r| *r == rounds[0]), "one round");
    std::thread::scope(|scope| {
        scope.spawn(|| flusher.run());
        flusher.wait(rounds[0]);
        flusher.stop();
    });
    for (p, log) in logs.iter().enumerate() {
        if p == 5 {
            assert!(log.is_offline());
            assert!(log.flushed_offset() < ends[p]);
        } else {
            assert_eq!(log.flushed_offset(), ends[p], "partition {p}");
        }
    }
    // What the round acknowledged survives a power loss.
    drop(logs);
    fs.crash();
    for p in (0..12).filter(|p| *p != 5) {
        assert_eq!(
            open(&fs, p, true).log_end_offset(),
            ends[p],
            "partition {p}"
        );
    }
}
