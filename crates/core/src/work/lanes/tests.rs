use std::sync::Arc;

use super::*;
use crate::testkit::{job, template};

fn jobs(lanes: &[usize]) -> Vec<(usize, Arc<Job>)> {
    let raw = template(&"11".repeat(32), "207fffff", 300);
    lanes
        .iter()
        .map(|&lane| (lane, job(lane as u64 + 1, raw.clone())))
        .collect()
}

fn counts(seats: &Seats) -> Vec<usize> {
    (0..seats.max_lanes()).map(|lane| seats.on(lane)).collect()
}

#[test]
fn miners_fill_the_least_loaded_lane_and_wait_over_the_bound_only_while_no_lane_has_room() {
    let seats = Seats::new(4, 2);
    assert_eq!(seats.wanted(), 1, "the pool is watched with no miner on it");
    let two = Lanes::new(0, seats.clone(), jobs(&[0, 1])).unwrap();
    let mut channels: Vec<Option<Seat>> = (0..5).map(|_| None).collect();
    for seat in &mut channels {
        two.pick(seat);
    }
    // Five miners, two lanes of two: one waits over the bound.
    assert_eq!(counts(&seats), [3, 2, 0, 0]);
    assert_eq!(seats.wanted(), 3);

    // The third connection is ready: one miner moves off the full lane,
    // and no other miner moves.
    let three = Lanes::new(0, seats.clone(), jobs(&[0, 1, 2])).unwrap();
    let before: Vec<usize> = channels
        .iter()
        .map(|s| s.as_ref().unwrap().lane())
        .collect();
    let mut moved = 0;
    for (seat, was) in channels.iter_mut().zip(&before) {
        let job = three.pick(seat);
        let lane = seat.as_ref().unwrap().lane();
        assert!(
            Arc::ptr_eq(&job, three.job(lane).unwrap()),
            "its lane's job"
        );
        moved += usize::from(lane != *was);
    }
    assert_eq!(moved, 1);
    assert_eq!(counts(&seats), [2, 2, 1, 0]);

    // A miner that leaves gives its seat back; one that comes sits there.
    channels.remove(0);
    assert_eq!(seats.seated(), 4);
    let mut late = None;
    three.pick(&mut late);
    assert_eq!(seats.seated(), 5);
    assert!(
        counts(&seats).iter().all(|&n| n <= 2),
        "{:?}",
        counts(&seats)
    );
}

#[test]
fn a_lane_gone_or_another_pool_s_seat_is_given_back_before_a_new_one_is_taken() {
    let seats = Seats::new(3, 10);
    let mut seat = None;
    Lanes::new(0, seats.clone(), jobs(&[2]))
        .unwrap()
        .pick(&mut seat);
    assert_eq!(counts(&seats), [0, 0, 1]);
    // Lane 2's connection went away: the miner moves, and counts once.
    Lanes::new(0, seats.clone(), jobs(&[0, 1]))
        .unwrap()
        .pick(&mut seat);
    assert_eq!(seats.seated(), 1);
    assert_eq!(seats.on(2), 0);

    // Another pool: this pool's seat is given back.
    let other = Seats::new(1, 10);
    Lanes::new(1, other.clone(), jobs(&[0]))
        .unwrap()
        .pick(&mut seat);
    assert_eq!((seats.seated(), other.seated()), (0, 1));
    drop(seat);
    assert_eq!(other.seated(), 0);
}

#[test]
fn past_the_most_connections_lanes_hold_more_and_no_lane_is_made_up() {
    let seats = Seats::new(2, 1);
    let lanes = Lanes::new(0, seats.clone(), jobs(&[0, 1])).unwrap();
    let held: Vec<Option<Seat>> = (0..5)
        .map(|_| {
            let mut seat = None;
            lanes.pick(&mut seat);
            seat
        })
        .collect();
    assert_eq!(counts(&seats), [3, 2]);
    assert_eq!(seats.wanted(), 2, "never more than the most connections");
    drop(held);
    assert!(Lanes::new(0, seats.clone(), Vec::new()).is_none());
    assert!(
        Lanes::new(0, seats, jobs(&[2])).is_none(),
        "lane 2 is past the most"
    );
}
