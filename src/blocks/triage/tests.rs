//! The triage's rules, one at a time.

use super::*;

const P: [u8; 32] = [1; 32];
const Q: [u8; 32] = [2; 32];

fn triage(siblings_per_parent: usize, kept_bytes: u64) -> Triage<&'static str> {
    Triage::new(Bounds {
        siblings_per_parent,
        kept_bytes,
    })
}

#[test]
fn the_first_block_of_a_parent_goes_at_once_and_siblings_wait_within_bounds() {
    let t = triage(2, 1_000);
    assert_eq!(t.admit(P, 10, 100), Admit::First);
    assert_eq!(t.admit(P, 10, 100), Admit::Sibling);
    assert_eq!(t.admit(P, 10, 100), Admit::Sibling);
    assert_eq!(t.admit(P, 10, 100), Admit::Drop(Dropped::Full));
    assert_eq!(t.kept(), (2, 200));
    // Another parent's first is never held back by P's siblings.
    assert_eq!(t.admit(Q, 11, 100), Admit::First);
}

#[test]
fn the_byte_bound_holds_across_parents_and_a_first_block_ignores_it() {
    let t = triage(10, 250);
    assert_eq!(t.admit(P, 10, 100), Admit::First);
    assert_eq!(t.admit(P, 10, 100), Admit::Sibling);
    assert_eq!(t.admit(P, 10, 100), Admit::Sibling);
    assert_eq!(t.admit(P, 10, 100), Admit::Drop(Dropped::Full));
    assert_eq!(t.admit(Q, 10, 10_000), Admit::First);
    assert_eq!(t.admit(Q, 10, 60), Admit::Drop(Dropped::Full));
    assert_eq!(t.admit(Q, 10, 50), Admit::Sibling);
}

#[test]
fn a_rejected_block_hands_over_the_next_sibling_in_order() {
    let t = triage(4, 10_000);
    t.admit(P, 10, 1);
    t.admit(P, 10, 1);
    t.admit(P, 10, 1);
    assert!(matches!(t.keep(P, 1, "second"), Keep::Held));
    assert!(matches!(t.keep(P, 1, "third"), Keep::Held));
    let settled = t.settled(P, 10, false);
    assert_eq!(settled.next, Some("second"));
    assert!(settled.discard.is_empty());
    assert_eq!(t.kept(), (1, 1));
    assert_eq!(t.settled(P, 10, false).next, Some("third"));
    // Nothing left: the parent is open, the next block found is a first.
    assert_eq!(t.settled(P, 10, false).next, None);
    assert_eq!(t.admit(P, 10, 1), Admit::First);
    assert_eq!(t.kept(), (0, 0));
}

#[test]
fn a_sibling_durable_after_a_rejection_left_nothing_is_submitted_at_once() {
    let t = triage(4, 10_000);
    t.admit(P, 10, 1);
    assert_eq!(t.admit(P, 10, 5), Admit::Sibling);
    // The first is rejected while the sibling is still being journaled.
    assert_eq!(t.settled(P, 10, false).next, None);
    assert!(matches!(t.keep(P, 5, "late"), Keep::SubmitNow("late")));
    assert_eq!(t.kept(), (0, 0));
    assert_eq!(t.admit(P, 10, 1), Admit::Sibling);
}

#[test]
fn a_taken_block_discards_siblings_at_its_height_and_below_but_not_above() {
    let t = triage(4, 10_000);
    let old: [u8; 32] = [9; 32];
    for (parent, height) in [(old, 9), (P, 10), (Q, 10)] {
        assert_eq!(t.admit(parent, height, 1), Admit::First);
        assert_eq!(t.admit(parent, height, 1), Admit::Sibling);
    }
    let next: [u8; 32] = [3; 32];
    assert_eq!(t.admit(next, 11, 1), Admit::First);
    assert_eq!(t.admit(next, 11, 1), Admit::Sibling);
    assert!(matches!(t.keep(old, 1, "old"), Keep::Held));
    assert!(matches!(t.keep(P, 1, "p"), Keep::Held));
    assert!(matches!(t.keep(next, 1, "next"), Keep::Held));
    let mut settled = t.settled(P, 10, true);
    settled.discard.sort();
    assert_eq!(settled.discard, ["old", "p"]);
    assert_eq!(settled.next, None);
    // Q's sibling was still on its way: discarded when it arrives.
    assert!(matches!(t.keep(Q, 1, "q"), Keep::Discard("q")));
    assert_eq!(t.admit(P, 10, 1), Admit::Drop(Dropped::Superseded));
    assert_eq!(t.kept(), (1, 1), "the next height's sibling stays");
    // A rejection of a superseded parent's first hands nothing over.
    assert_eq!(t.settled(old, 9, false).next, None);
}

#[test]
fn summaries_count_what_came_after_the_first_once() {
    let t = triage(1, 10_000);
    t.admit(P, 10, 1);
    assert!(
        t.summaries().is_empty(),
        "a first block alone is its own line"
    );
    for _ in 0..5 {
        t.admit(P, 10, 1);
    }
    let summaries = t.summaries();
    assert_eq!(
        summaries,
        [Summary {
            parent: P,
            height: 10,
            more: 5,
            dropped: 4,
            kept: 1
        }]
    );
    assert!(t.summaries().is_empty());
}

#[test]
fn parents_are_forgotten_lowest_first_but_never_while_they_hold_siblings() {
    let t = triage(1, u64::MAX);
    let key = |i: u32| {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_le_bytes());
        key
    };
    assert_eq!(t.admit(key(0), 0, 1), Admit::First);
    assert_eq!(t.admit(key(0), 0, 1), Admit::Sibling);
    for i in 1..10 * PARENTS_REMEMBERED as u32 {
        assert_eq!(t.admit(key(i), i, 1), Admit::First);
    }
    assert!(t.lock().parents.len() <= PARENTS_REMEMBERED);
    assert!(matches!(t.keep(key(0), 1, "kept"), Keep::Held));
    assert_eq!(t.settled(key(0), 0, false).next, Some("kept"));
}

#[test]
fn a_block_from_an_earlier_run_is_triaged_like_a_new_one() {
    let t = triage(1, 10_000);
    assert!(matches!(t.recovered(P, 10, 1, "a"), Keep::SubmitNow("a")));
    assert!(matches!(t.recovered(P, 10, 1, "b"), Keep::Held));
    assert!(matches!(t.recovered(P, 10, 1, "c"), Keep::Discard("c")));
}
