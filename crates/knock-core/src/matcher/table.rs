//! The bounded attempt table behind [`super::Matcher`].
//!
//! Two fixed arrays, allocated once:
//!
//! - `hot`: an open-addressing hash index (linear probing, backward-shift deletion) of at least
//!   twice as many buckets as the capacity, so the load factor stays at or below one half. A
//!   bucket is one 32-byte record holding everything a packet needs (source, door, stage,
//!   deadline), so looking up and advancing an attempt touches a single cache line.
//! - `cold`: one record per attempt slot (capacity of them), holding the links of one intrusive
//!   doubly linked FIFO list per distinct timeout ("class"), the full 64-bit deadline, the
//!   rotating step and the hash (to find the slot's bucket again). Entries are appended when their attempt starts, so
//!   within a list both the first-knock time and the deadline grow from head to tail: the next
//!   expiry and the oldest attempt are found by comparing list heads (whose deadlines are cached
//!   in the list itself), and eviction and expiry are O(1).
//!
//! Bucket positions change when a deletion shifts a run back; slots never move. Positions
//! returned by [`Table::find`] and [`Table::insert`] are valid until the next removal.
//!
//! The bucket keeps the deadline's low 32 bits only; comparisons are wrapping and stay exact
//! while deadlines are within 2^31 ms of the clock. Timeouts are limited to [`MAX_TIMEOUT_MS`]
//! and [`Table::drop_stale`] removes attempts long past their deadline, which keeps it so.

pub(crate) const NIL: u32 = u32::MAX;

/// Longest timeout the table supports (about 12 days).
pub const MAX_TIMEOUT_MS: u64 = 1 << 30;

/// Attempts this far past their deadline are removed by [`Table::drop_stale`].
pub(crate) const STALE_MS: u64 = 1 << 30;

const LIVE: u8 = 0b1;
const V6: u8 = 0b10;
const CAND_SHIFT: u8 = 2;

/// A bucket: one attempt, as packets need it.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct Hot {
    /// Source address (IPv4 addresses in the low 32 bits).
    addr: u128,
    /// Low 32 bits of the deadline (`expires_at`).
    exp32: u32,
    /// Keyed hash of (source, door): home bucket and tag.
    hash: u32,
    /// The attempt's slot in `cold`.
    slot: u32,
    door: u16,
    stage: u8,
    /// LIVE, V6, and the rotating candidate mask in bits 2..5.
    bits: u8,
}

const EMPTY_HOT: Hot = Hot {
    addr: 0,
    exp32: 0,
    hash: 0,
    slot: NIL,
    door: 0,
    stage: 0,
    bits: 0,
};

/// A slot: an attempt's bookkeeping.
#[derive(Clone, Copy, Debug)]
struct Cold {
    /// First instant (ms) at which the attempt is expired: first knock + timeout + 1.
    expires_at: u64,
    /// Rotating doors: the step number at the first knock.
    base_step: u64,
    prev: u32,
    /// Next in the class list, or in the free list.
    next: u32,
    /// The attempt's hash: where the search for its bucket starts (buckets move, slots don't).
    hash: u32,
    /// Whether the slot holds an attempt.
    live: bool,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    /// Deadline of the head (valid when `head != NIL`).
    head_exp: u64,
    /// timeout_ms + 1: `expires_at - span` is the first-knock time.
    span: u64,
}

/// Who an attempt belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Key {
    pub addr: u128,
    pub v6: bool,
    pub door: u16,
}

/// A copy of an attempt's packet-side state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub addr: u128,
    pub v6: bool,
    pub door: u16,
    pub stage: u8,
    pub cands: u8,
}

pub(crate) struct Table {
    hot: Box<[Hot]>,
    cold: Box<[Cold]>,
    mask: usize,
    free: u32,
    len: usize,
    lists: Box<[List]>,
    class_of: Box<[u16]>,
}

#[inline]
fn expired32(exp32: u32, now: u64) -> bool {
    // exp32 - now <= 0, modulo 2^32.
    (exp32.wrapping_sub(now as u32) as i32) <= 0
}

impl Table {
    /// `capacity` in 1..=2^30 and spans (timeout + 1) up to [`MAX_TIMEOUT_MS`] + 1 (checked by
    /// the caller); `class_of[door]` indexes `spans`.
    pub fn new(capacity: usize, class_of: Vec<u16>, spans: &[u64]) -> Table {
        let cold = (0..capacity)
            .map(|i| Cold {
                expires_at: 0,
                base_step: 0,
                prev: NIL,
                next: if i + 1 < capacity {
                    (i + 1) as u32
                } else {
                    NIL
                },
                hash: 0,
                live: false,
            })
            .collect();
        let nbuckets = (capacity * 2).next_power_of_two().max(2);
        Table {
            hot: vec![EMPTY_HOT; nbuckets].into_boxed_slice(),
            cold,
            mask: nbuckets - 1,
            free: if capacity > 0 { 0 } else { NIL },
            len: 0,
            lists: spans
                .iter()
                .map(|&span| List {
                    head: NIL,
                    tail: NIL,
                    head_exp: 0,
                    span,
                })
                .collect(),
            class_of: class_of.into_boxed_slice(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn capacity(&self) -> usize {
        self.cold.len()
    }

    /// Bytes held by the table's fixed arrays (constant for the table's life).
    pub fn footprint(&self) -> usize {
        std::mem::size_of_val(&*self.hot)
            + std::mem::size_of_val(&*self.cold)
            + std::mem::size_of_val(&*self.lists)
            + std::mem::size_of_val(&*self.class_of)
    }

    /// Asks the CPU to start loading the home bucket of `hash` (see
    /// [`crate::matcher::Matcher::process_batch`]). Only a hint: it changes no state.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        let b: &Hot = &self.hot[hash as usize & self.mask];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: a prefetch never faults and reads nothing the program can observe; the
            // pointer comes from a live reference anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((b as *const Hot).cast::<i8>()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = b;
    }

    /// The bucket of the attempt of `key`, if any.
    #[inline]
    pub fn find(&self, hash: u32, key: Key) -> Option<u32> {
        let mut i = hash as usize & self.mask;
        loop {
            let b = &self.hot[i];
            if b.bits & LIVE == 0 {
                return None;
            }
            if b.hash == hash
                && b.addr == key.addr
                && b.door == key.door
                && (b.bits & V6 != 0) == key.v6
            {
                return Some(i as u32);
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    pub fn view(&self, pos: u32) -> View {
        let b = &self.hot[pos as usize];
        View {
            addr: b.addr,
            v6: b.bits & V6 != 0,
            door: b.door,
            stage: b.stage,
            cands: b.bits >> CAND_SHIFT,
        }
    }

    /// Whether the attempt at `pos` is past its deadline at `now`.
    #[inline]
    pub fn is_expired(&self, pos: u32, now: u64) -> bool {
        expired32(self.hot[pos as usize].exp32, now)
    }

    #[inline]
    pub fn set_progress(&mut self, pos: u32, stage: u8, cands: u8) {
        let b = &mut self.hot[pos as usize];
        b.stage = stage;
        b.bits = (b.bits & (LIVE | V6)) | (cands << CAND_SHIFT);
    }

    pub fn base_step(&self, pos: u32) -> u64 {
        self.cold[self.hot[pos as usize].slot as usize].base_step
    }

    /// Adds an attempt known to be absent, at stage `stage`. When the table is full the oldest
    /// attempt (by first-knock time) is evicted first; the second value says so. `None` only
    /// for a table without slots (never built by the matcher).
    pub fn insert(
        &mut self,
        hash: u32,
        key: Key,
        expires_at: u64,
        stage: u8,
        cands: u8,
        base_step: u64,
    ) -> Option<(u32, bool)> {
        let mut evicted = false;
        if self.free == NIL
            && let Some(old) = self.oldest()
        {
            self.remove_slot(old);
            evicted = true;
        }
        let slot = self.free;
        if slot == NIL {
            return None;
        }
        let mut i = hash as usize & self.mask;
        while self.hot[i].bits & LIVE != 0 {
            i = (i + 1) & self.mask;
        }
        self.hot[i] = Hot {
            addr: key.addr,
            exp32: expires_at as u32,
            hash,
            slot,
            door: key.door,
            stage,
            bits: LIVE | if key.v6 { V6 } else { 0 } | (cands << CAND_SHIFT),
        };
        let class = self.class_of[usize::from(key.door)] as usize;
        let tail = self.lists[class].tail;
        let c = &mut self.cold[slot as usize];
        self.free = c.next;
        *c = Cold {
            expires_at,
            base_step,
            prev: tail,
            next: NIL,
            hash,
            live: true,
        };
        let list = &mut self.lists[class];
        if tail == NIL {
            list.head = slot;
            list.head_exp = expires_at;
        } else {
            self.cold[tail as usize].next = slot;
        }
        self.lists[class].tail = slot;
        self.len += 1;
        Some((i as u32, evicted))
    }

    /// Removes the attempt in bucket `pos`.
    pub fn remove(&mut self, pos: u32) {
        let b = self.hot[pos as usize];
        if b.bits & LIVE == 0 {
            return;
        }
        // FIFO list.
        let slot = b.slot;
        let c = self.cold[slot as usize];
        let class = self.class_of[usize::from(b.door)] as usize;
        if c.prev == NIL {
            let list = &mut self.lists[class];
            list.head = c.next;
            if c.next != NIL {
                list.head_exp = self.cold[c.next as usize].expires_at;
            }
        } else {
            self.cold[c.prev as usize].next = c.next;
        }
        if c.next == NIL {
            self.lists[class].tail = c.prev;
        } else {
            self.cold[c.next as usize].prev = c.prev;
        }
        // Free list.
        let f = &mut self.cold[slot as usize];
        f.prev = NIL;
        f.live = false;
        f.next = self.free;
        self.free = slot;
        self.len -= 1;
        // Index: shift the following run back over the hole.
        let mut hole = pos as usize;
        let mut j = (hole + 1) & self.mask;
        loop {
            let m = self.hot[j];
            if m.bits & LIVE == 0 {
                break;
            }
            let home = m.hash as usize & self.mask;
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.hot[hole] = m;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.hot[hole] = EMPTY_HOT;
    }

    /// The bucket of a live slot.
    fn pos_of(&self, slot: u32) -> Option<u32> {
        let c = &self.cold[slot as usize];
        if !c.live {
            return None;
        }
        let mut i = c.hash as usize & self.mask;
        for _ in 0..=self.mask {
            let b = &self.hot[i];
            if b.bits & LIVE == 0 {
                break;
            }
            if b.slot == slot {
                return Some(i as u32);
            }
            i = (i + 1) & self.mask;
        }
        debug_assert!(false, "slot {slot} missing from the index");
        None
    }

    fn remove_slot(&mut self, slot: u32) {
        if let Some(pos) = self.pos_of(slot) {
            self.remove(pos);
        }
    }

    /// The slot of the attempt with the earliest first knock.
    fn oldest(&self) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for l in self.lists.iter() {
            if l.head != NIL {
                let first = l.head_exp.saturating_sub(l.span);
                if best.is_none_or(|(b, _)| first < b) {
                    best = Some((first, l.head));
                }
            }
        }
        best.map(|(_, s)| s)
    }

    /// The earliest deadline among all attempts.
    pub fn next_deadline(&self) -> Option<u64> {
        self.lists
            .iter()
            .filter(|l| l.head != NIL)
            .map(|l| l.head_exp)
            .min()
    }

    /// The bucket of an attempt whose deadline is at or before `limit`, earliest first.
    pub fn first_expired(&self, limit: u64) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for l in self.lists.iter() {
            if l.head != NIL && l.head_exp <= limit && best.is_none_or(|(b, _)| l.head_exp < b) {
                best = Some((l.head_exp, l.head));
            }
        }
        best.and_then(|(_, s)| self.pos_of(s))
    }

    /// Whether some attempt is so far past its deadline (2^30 ms) that the 32-bit deadline in
    /// its bucket could become ambiguous; callers then drop them with [`Table::first_expired`].
    #[inline]
    pub fn has_stale(&self, now: u64) -> bool {
        let limit = now.saturating_sub(STALE_MS);
        self.lists
            .iter()
            .any(|l| l.head != NIL && l.head_exp <= limit)
    }

    /// Removes every attempt on `door` (a full scan; used when a door changes).
    pub fn remove_door(&mut self, door: u16) {
        for i in 0..self.hot.len() {
            // A removal may shift a later bucket into `i`: look again until it holds another
            // door or nothing.
            while self.hot[i].bits & LIVE != 0 && self.hot[i].door == door {
                self.remove(i as u32);
            }
        }
    }

    /// Checks every structural invariant (tests only).
    #[cfg(test)]
    pub fn check(&self) {
        let mut live = 0;
        for (i, b) in self.hot.iter().enumerate() {
            if b.bits & LIVE != 0 {
                live += 1;
                let key = Key {
                    addr: b.addr,
                    v6: b.bits & V6 != 0,
                    door: b.door,
                };
                assert_eq!(self.find(b.hash, key), Some(i as u32));
                let c = &self.cold[b.slot as usize];
                assert!(c.live);
                assert_eq!(c.hash, b.hash);
                assert_eq!(self.pos_of(b.slot), Some(i as u32));
                assert_eq!(c.expires_at as u32, b.exp32);
            }
        }
        assert_eq!(live, self.len);
        let mut listed = 0;
        for (k, l) in self.lists.iter().enumerate() {
            let mut s = l.head;
            let mut prev = NIL;
            let mut last_exp = 0;
            if s != NIL {
                assert_eq!(l.head_exp, self.cold[s as usize].expires_at);
            }
            while s != NIL {
                let c = &self.cold[s as usize];
                let b = &self.hot[self.pos_of(s).unwrap() as usize];
                assert_eq!(b.slot, s);
                assert_eq!(c.prev, prev);
                assert_eq!(self.class_of[usize::from(b.door)] as usize, k);
                assert!(c.expires_at >= last_exp, "list {k} not in deadline order");
                last_exp = c.expires_at;
                listed += 1;
                prev = s;
                s = c.next;
            }
            assert_eq!(l.tail, prev);
        }
        assert_eq!(listed, self.len);
        let mut free = 0;
        let mut s = self.free;
        while s != NIL {
            assert!(!self.cold[s as usize].live);
            free += 1;
            s = self.cold[s as usize].next;
        }
        assert_eq!(free + self.len, self.cold.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_deadline_compare() {
        assert!(expired32(100, 100));
        assert!(!expired32(101, 100));
        assert!(expired32(5, (1u64 << 32) + 10)); // deadline 2^32+5 passed at 2^32+10
        assert!(!expired32(5, (1u64 << 32) - 10)); // deadline 2^32+5 ahead of 2^32-10
        assert!(expired32(10, 10 + (1u64 << 30)));
    }

    #[test]
    fn records_are_compact() {
        assert_eq!(std::mem::size_of::<Hot>(), 32);
        assert_eq!(std::mem::align_of::<Hot>(), 32);
        assert!(std::mem::size_of::<Cold>() <= 32);
    }
}
