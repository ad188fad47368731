//! The two writes that keep an invalidation from being undone (`ARCHITECTURE.md`, "The
//! cache-aside flow"): a compare-and-set for fetched answers, and the marker `clear_*` and
//! `logout` leave. Each touches one key in one atomic step, so both work on Redis Cluster.

use super::{Outcome, RedisStorage};
use crate::error::StorageError;
use crate::storage::Storage;
use redis::{ErrorKind, RedisResult, ServerErrorKind};
use std::sync::OnceLock;
use std::time::Duration;

/// Redis refuses `PX` values whose absolute expiry overflows; a century is far beyond any
/// cache TTL and far below that limit.
const MAX_PX_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// `SET key value PX ttl` (`DEL key` when the ttl is `0`) only if the key holds `expected`
/// (`ARGV[1]` is `1` and the value is `ARGV[2]`) or nothing (`ARGV[1]` is `0`). Answers 1 if
/// it wrote, else 0.
const SET_IF: &str = r"
local expected = false
if ARGV[1] == '1' then expected = ARGV[2] end
if redis.call('GET', KEYS[1]) == expected then
  if ARGV[4] == '0' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  end
  return 1
end
return 0
";

/// The script's SHA-1 as Redis reported it on `SCRIPT LOAD` (once per process): `EVALSHA`
/// then sends it instead of the script.
static SET_IF_SHA: OnceLock<String> = OnceLock::new();

/// A TTL as Redis `PX` milliseconds: rounded down (but at least 1 ms) so Redis never keeps
/// an entry past it, and capped where Redis would refuse it.
pub(super) fn px_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_PX_MS)
}

/// The script's hash, asked of Redis once per process.
fn set_if_sha(conn: &mut redis::Connection) -> RedisResult<&'static str> {
    if let Some(sha) = SET_IF_SHA.get() {
        return Ok(sha);
    }
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(SET_IF).query(conn)?;
    Ok(SET_IF_SHA.get_or_init(|| sha))
}

/// Runs the compare-and-set script by its hash; a Redis that does not know it (restarted,
/// `SCRIPT FLUSH`ed, another node of a cluster) gets the script itself, which also caches it
/// there again.
fn set_if_script(
    conn: &mut redis::Connection,
    key: &str,
    expected: Option<&[u8]>,
    value: &[u8],
    px: u64,
) -> RedisResult<bool> {
    let args = |command: &str, script: &str| {
        let mut cmd = redis::cmd(command);
        cmd.arg(script).arg(1).arg(key);
        cmd.arg(u8::from(expected.is_some()))
            .arg(expected.unwrap_or_default())
            .arg(value)
            .arg(px);
        cmd
    };
    match args("EVALSHA", set_if_sha(conn)?).query::<i64>(conn) {
        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            args("EVAL", SET_IF)
                .query::<i64>(conn)
                .map(|wrote| wrote == 1)
        }
        result => result.map(|wrote| wrote == 1),
    }
}

impl RedisStorage {
    /// [`Storage::set_if`](super::Storage::set_if): atomic in Redis (a zero `ttl` deletes);
    /// the fallback's own `set_if` while Redis is unavailable.
    pub(super) fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        // `0` asks the script to delete; any other TTL is at least 1 ms.
        let px = if ttl.is_zero() { 0 } else { px_millis(ttl) };
        match self.run(key, |conn| set_if_script(conn, key, expected, value, px)) {
            Outcome::Done(wrote) => Ok(wrote),
            Outcome::Refused(error) => Err(error),
            Outcome::Unavailable(error) => match self.fallback_storage() {
                Some(fallback) => fallback.set_if(key, expected, value, ttl),
                None => Err(error),
            },
        }
    }

    /// [`Storage::invalidate`](super::Storage::invalidate): a plain `SET … PX`. While Redis
    /// is unavailable the marker goes to the fallback, and the call still fails: processes
    /// sharing the Redis have not seen this invalidation.
    pub(super) fn write_marker(
        &self,
        key: &str,
        marker: &[u8],
        ttl: Duration,
    ) -> Result<(), StorageError> {
        let px = px_millis(ttl);
        let set = |conn: &mut redis::Connection| {
            redis::cmd("SET")
                .arg(key)
                .arg(marker)
                .arg("PX")
                .arg(px)
                .query::<()>(conn)
        };
        match self.run(key, set) {
            Outcome::Done(()) => Ok(()),
            Outcome::Refused(error) => Err(error),
            Outcome::Unavailable(error) => {
                if let Some(fallback) = self.fallback_storage() {
                    let _ = fallback.set(key, marker, ttl);
                }
                Err(error)
            }
        }
    }
}
