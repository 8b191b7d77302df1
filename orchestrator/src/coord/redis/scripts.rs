//! The Lua scripts that make lease and presence updates atomic: each compares the value a
//! key holds before it changes the key, in one step no other client can interleave with.

use deadpool_redis::redis::Script;

/// Sets a lease unless a newer epoch holds it. KEYS[1] is the lease, ARGV[1] the epoch,
/// ARGV[2] the TTL in milliseconds; returns 1 when granted, 0 when a newer epoch holds it.
///
/// Epochs are compared as decimal strings, by length and then lexically: Lua numbers are
/// doubles and would round epochs above 2^53.
const GRANT: &str = r"
local current = redis.call('GET', KEYS[1])
if current and (#current > #ARGV[1] or (#current == #ARGV[1] and current > ARGV[1])) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Extends a key's TTL if it holds the given value. KEYS[1] is the key, ARGV[1] the
/// value, ARGV[2] the TTL in milliseconds; returns 1 when extended, 0 otherwise.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes a key if it holds the given value. KEYS[1] is the key, ARGV[1] the value;
/// returns 1 when deleted, 0 otherwise.
const DELETE_IF_EQUAL: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Reads the data generation, writing ARGV[1] as the new one when there is none. KEYS[1]
/// is the generation key; returns its value.
const GENERATION: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  return current
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
";

/// The scripts, with their hashes computed once. They run with `EVALSHA` and are loaded
/// again by the client when Redis has forgotten them (after a restart, for instance).
pub(super) struct Scripts {
    /// Grants a lease (see [`GRANT`]).
    pub(super) grant: Script,
    /// Renews a lease held under an epoch (see [`RENEW`]).
    pub(super) renew: Script,
    /// Releases a lease held under an epoch, or marks a runner offline if a replica still
    /// holds it (see [`DELETE_IF_EQUAL`]).
    pub(super) delete_if_equal: Script,
    /// Reads the data generation, starting a new one when it is gone (see [`GENERATION`]).
    pub(super) generation: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            grant: Script::new(GRANT),
            renew: Script::new(RENEW),
            delete_if_equal: Script::new(DELETE_IF_EQUAL),
            generation: Script::new(GENERATION),
        }
    }
}
