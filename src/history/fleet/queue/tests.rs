use super::super::rows::{BlockRow, SessionRow, WorkerMinute};
use super::*;

fn batch(id: i64, workers: usize) -> Batch {
    Batch {
        id,
        replica: "r".into(),
        workers: (0..workers)
            .map(|i| WorkerMinute {
                worker: format!("acct.{i:05}"),
                minute: 60 * id as u64,
                accepted: 1,
                ..WorkerMinute::default()
            })
            .collect(),
        blocks: vec![BlockRow {
            hash: format!("{id:064}"),
            ..BlockRow::default()
        }],
        sessions: vec![SessionRow::default()],
        ..Batch::default()
    }
}

#[test]
fn batches_come_back_in_order_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.redb");
    let mut queue = Queue::open(&path, 1 << 30).unwrap();
    for id in 1..=3 {
        assert_eq!(queue.push(&batch(id, 2)).unwrap(), 0);
    }
    drop(queue);
    let mut queue = Queue::open(&path, 1 << 30).unwrap();
    assert_eq!(queue.len().0, 3);
    let mut ids = Vec::new();
    while let (Some((key, batch)), 0) = queue.first().unwrap() {
        ids.push(batch.id);
        queue.remove(key).unwrap();
    }
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(queue.len(), (0, 0));
}

#[test]
fn past_its_bound_the_oldest_worker_minutes_go_first_and_blocks_never() {
    let dir = tempfile::tempdir().unwrap();
    let one = encode(&batch(1, 100)).len() as u64;
    // Room for about three full batches.
    let mut queue = Queue::open(&dir.path().join("q.redb"), one * 3 + one / 2).unwrap();
    let mut dropped = 0;
    for id in 1..=5 {
        dropped += queue.push(&batch(id, 100)).unwrap();
    }
    assert!(queue.len().1 <= one * 3 + one / 2, "{:?}", queue.len());
    assert_eq!(dropped, 200, "two batches' worker minutes");
    let mut kept = Vec::new();
    while let (Some((key, batch)), _) = queue.first().unwrap() {
        kept.push((batch.id, batch.workers.len(), batch.blocks.len()));
        queue.remove(key).unwrap();
    }
    assert_eq!(
        kept,
        [(1, 0, 1), (2, 0, 1), (3, 100, 1), (4, 100, 1), (5, 100, 1)]
    );
}

#[test]
fn a_batch_that_cannot_be_read_is_removed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut queue = Queue::open(&dir.path().join("q.redb"), 1 << 30).unwrap();
    {
        let tx = queue.db.begin_write().unwrap();
        tx.open_table(BATCHES)
            .unwrap()
            .insert(1, b"not json".as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    queue.push(&batch(7, 1)).unwrap();
    let (first, unreadable) = queue.first().unwrap();
    assert_eq!((first.map(|(_, b)| b.id), unreadable), (Some(7), 1));
}
