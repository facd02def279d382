//! The bounded attempt table behind [`super::Matcher`].
//!
//! - A slab of `capacity` entries, allocated once; free slots form an intrusive free list.
//! - An open-addressing index (linear probing, backward-shift deletion) of at least twice as many
//!   buckets as slots, so the load factor stays at or below one half. Each bucket holds the slot
//!   number and 32 bits of the keyed hash, so most misses never touch the slab.
//! - One intrusive doubly linked FIFO list per distinct timeout ("class"). Entries are appended
//!   when their attempt starts, so within a list both the first-knock time and the deadline grow
//!   from head to tail: the next expiry and the oldest attempt are found by comparing list heads.
//!
//! Nothing here allocates after construction.

pub(crate) const NIL: u32 = u32::MAX;

const LIVE: u8 = 0b1;
const V6: u8 = 0b10;

/// One attempt: a source's progress on one door.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// Source address (IPv4 addresses in the low 32 bits).
    pub addr: u128,
    /// First instant (ms) at which the attempt is expired: first knock + timeout + 1.
    pub expires_at: u64,
    /// Rotating doors: the step number at the first knock.
    pub base_step: u64,
    prev: u32,
    next: u32,
    hash: u32,
    pub door: u16,
    /// Knocks matched so far (1-based stage reached).
    pub stage: u8,
    /// Rotating doors: which of the steps base-1, base, base+1 are still consistent (bits 0..3).
    pub cands: u8,
    bits: u8,
}

impl Entry {
    const EMPTY: Entry = Entry {
        addr: 0,
        expires_at: 0,
        base_step: 0,
        prev: NIL,
        next: NIL,
        hash: 0,
        door: 0,
        stage: 0,
        cands: 0,
        bits: 0,
    };

    pub fn is_v6(&self) -> bool {
        self.bits & V6 != 0
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    hash: u32,
    slot: u32,
}

const EMPTY_BUCKET: Bucket = Bucket { hash: 0, slot: NIL };

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
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

pub(crate) struct Table {
    entries: Box<[Entry]>,
    buckets: Box<[Bucket]>,
    mask: usize,
    free: u32,
    len: usize,
    lists: Box<[List]>,
    class_of: Box<[u16]>,
}

impl Table {
    /// `capacity` in 1..=2^30 (checked by the caller); `class_of[door]` indexes `spans`.
    pub fn new(capacity: usize, class_of: Vec<u16>, spans: &[u64]) -> Table {
        let mut entries = vec![Entry::EMPTY; capacity].into_boxed_slice();
        for (i, e) in entries.iter_mut().enumerate() {
            e.next = if i + 1 < capacity {
                (i + 1) as u32
            } else {
                NIL
            };
        }
        let nbuckets = (capacity * 2).next_power_of_two().max(2);
        Table {
            entries,
            buckets: vec![EMPTY_BUCKET; nbuckets].into_boxed_slice(),
            mask: nbuckets - 1,
            free: if capacity > 0 { 0 } else { NIL },
            len: 0,
            lists: spans
                .iter()
                .map(|&span| List {
                    head: NIL,
                    tail: NIL,
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
        self.entries.len()
    }

    /// Bytes held by the table's fixed arrays (constant for the table's life).
    pub fn footprint(&self) -> usize {
        std::mem::size_of_val(&*self.entries)
            + std::mem::size_of_val(&*self.buckets)
            + std::mem::size_of_val(&*self.lists)
            + std::mem::size_of_val(&*self.class_of)
    }

    #[inline]
    pub fn entry(&self, slot: u32) -> &Entry {
        &self.entries[slot as usize]
    }

    #[inline]
    pub fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        &mut self.entries[slot as usize]
    }

    #[inline]
    pub fn find(&self, hash: u32, key: Key) -> Option<u32> {
        let mut i = hash as usize & self.mask;
        loop {
            let b = self.buckets[i];
            if b.slot == NIL {
                return None;
            }
            if b.hash == hash {
                let e = &self.entries[b.slot as usize];
                if e.addr == key.addr && e.door == key.door && e.is_v6() == key.v6 {
                    return Some(b.slot);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Adds an attempt known to be absent. When the table is full the oldest attempt (by
    /// first-knock time) is evicted first; the second value says so. `None` only for a table
    /// without slots (never built by the matcher).
    pub fn insert(&mut self, hash: u32, key: Key, expires_at: u64) -> Option<(u32, bool)> {
        let mut evicted = false;
        if self.free == NIL
            && let Some(old) = self.oldest()
        {
            self.remove(old);
            evicted = true;
        }
        let slot = self.free;
        if slot == NIL {
            return None;
        }
        let class = self.class_of[key.door as usize] as usize;
        let tail = self.lists[class].tail;
        {
            let e = &mut self.entries[slot as usize];
            self.free = e.next;
            *e = Entry {
                addr: key.addr,
                expires_at,
                base_step: 0,
                prev: tail,
                next: NIL,
                hash,
                door: key.door,
                stage: 0,
                cands: 0,
                bits: LIVE | if key.v6 { V6 } else { 0 },
            };
        }
        if tail == NIL {
            self.lists[class].head = slot;
        } else {
            self.entries[tail as usize].next = slot;
        }
        self.lists[class].tail = slot;
        let mut i = hash as usize & self.mask;
        while self.buckets[i].slot != NIL {
            i = (i + 1) & self.mask;
        }
        self.buckets[i] = Bucket { hash, slot };
        self.len += 1;
        Some((slot, evicted))
    }

    /// Removes a live attempt.
    pub fn remove(&mut self, slot: u32) {
        let e = self.entries[slot as usize];
        if e.bits & LIVE == 0 {
            return;
        }
        // Index: find the bucket, then shift the following run back over the hole.
        let mut i = e.hash as usize & self.mask;
        let mut probes = 0;
        while self.buckets[i].slot != slot {
            i = (i + 1) & self.mask;
            probes += 1;
            if probes > self.mask {
                // Unreachable while the invariants hold; never loop forever.
                debug_assert!(false, "slot {slot} missing from the index");
                break;
            }
        }
        if probes <= self.mask {
            let mut hole = i;
            let mut j = (i + 1) & self.mask;
            loop {
                let b = self.buckets[j];
                if b.slot == NIL {
                    break;
                }
                let home = b.hash as usize & self.mask;
                if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                    self.buckets[hole] = b;
                    hole = j;
                }
                j = (j + 1) & self.mask;
            }
            self.buckets[hole] = EMPTY_BUCKET;
        }
        // FIFO list.
        let class = self.class_of[e.door as usize] as usize;
        if e.prev == NIL {
            self.lists[class].head = e.next;
        } else {
            self.entries[e.prev as usize].next = e.next;
        }
        if e.next == NIL {
            self.lists[class].tail = e.prev;
        } else {
            self.entries[e.next as usize].prev = e.prev;
        }
        // Free list.
        let f = &mut self.entries[slot as usize];
        f.bits = 0;
        f.prev = NIL;
        f.next = self.free;
        self.free = slot;
        self.len -= 1;
    }

    /// The attempt with the earliest first knock.
    fn oldest(&self) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for l in self.lists.iter() {
            if l.head != NIL {
                let first = self.entries[l.head as usize]
                    .expires_at
                    .saturating_sub(l.span);
                if best.is_none_or(|(b, _)| first < b) {
                    best = Some((first, l.head));
                }
            }
        }
        best.map(|(_, s)| s)
    }

    /// The earliest `expires_at` among all attempts.
    pub fn next_deadline(&self) -> Option<u64> {
        self.lists
            .iter()
            .filter(|l| l.head != NIL)
            .map(|l| self.entries[l.head as usize].expires_at)
            .min()
    }

    /// An attempt whose `expires_at <= now`, earliest first; `None` if there is none.
    pub fn first_expired(&self, now: u64) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for l in self.lists.iter() {
            if l.head != NIL {
                let at = self.entries[l.head as usize].expires_at;
                if at <= now && best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, l.head));
                }
            }
        }
        best.map(|(_, s)| s)
    }

    /// Removes every attempt on `door`.
    pub fn remove_door(&mut self, door: u16) {
        let Some(&class) = self.class_of.get(door as usize) else {
            return;
        };
        let mut s = self.lists[class as usize].head;
        while s != NIL {
            let e = self.entries[s as usize];
            if e.door == door {
                self.remove(s);
            }
            s = e.next;
        }
    }

    /// Checks every structural invariant (tests only).
    #[cfg(test)]
    pub fn check(&self) {
        let mut live = 0;
        for (s, e) in self.entries.iter().enumerate() {
            if e.bits & LIVE != 0 {
                live += 1;
                let key = Key {
                    addr: e.addr,
                    v6: e.is_v6(),
                    door: e.door,
                };
                assert_eq!(self.find(e.hash, key), Some(s as u32));
            }
        }
        assert_eq!(live, self.len);
        let indexed = self.buckets.iter().filter(|b| b.slot != NIL).count();
        assert_eq!(indexed, self.len);
        let mut listed = 0;
        for (c, l) in self.lists.iter().enumerate() {
            let mut s = l.head;
            let mut prev = NIL;
            let mut last_exp = 0;
            while s != NIL {
                let e = &self.entries[s as usize];
                assert!(e.bits & LIVE != 0);
                assert_eq!(e.prev, prev);
                assert_eq!(self.class_of[e.door as usize] as usize, c);
                assert!(e.expires_at >= last_exp, "list {c} not in deadline order");
                last_exp = e.expires_at;
                listed += 1;
                prev = s;
                s = e.next;
            }
            assert_eq!(l.tail, prev);
        }
        assert_eq!(listed, self.len);
        let mut free = 0;
        let mut s = self.free;
        while s != NIL {
            assert!(self.entries[s as usize].bits & LIVE == 0);
            free += 1;
            s = self.entries[s as usize].next;
        }
        assert_eq!(free + self.len, self.entries.len());
    }
}
