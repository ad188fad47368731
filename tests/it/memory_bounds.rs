//! `MemoryStorage` holds its bounds whatever the answers weigh: an entry bound and a byte
//! bound, enforced together.

use crate::support::{HOUR, builder_for};
use miso_client::testing::FakeController;
use miso_client::{DEFAULT_MAX_BYTES, ManualClock, MemoryStorage, UserInfo};

/// Validations naming a 1 MB user: each entry weighs about a megabyte, and 200 of them would
/// be 200 MB with an entry bound alone.
#[test]
fn two_hundred_validations_naming_a_1_mb_user_stay_within_the_byte_bound() {
    let clock = ManualClock::new();
    let fake = FakeController::builder().clock(clock.clone()).build();
    fake.set_user(UserInfo::new("alice").with_username("x".repeat(1_000_000)));
    let storage = MemoryStorage::builder().clock(clock.clone()).build();
    let client = builder_for(&fake, &clock)
        .storage(storage.clone())
        .build()
        .unwrap();
    let mut most = 0;
    for _ in 0..200 {
        let token = fake.mint_token("alice", HOUR);
        assert!(client.validate_token(&token).unwrap());
        most = most.max(storage.bytes());
    }
    assert_eq!(storage.max_bytes(), DEFAULT_MAX_BYTES);
    assert!(
        most <= DEFAULT_MAX_BYTES,
        "{most} bytes held, bound {DEFAULT_MAX_BYTES}"
    );
    assert!(
        most > DEFAULT_MAX_BYTES / 4,
        "the entries were kept: {most} bytes"
    );
}
