//! One instrument's price-time order book, and the slab that stores every resting order.
//!
//! Prices are bounded by the capped-return band, so each side is a ladder: a vector of price
//! levels indexed directly by price in ticks, each a doubly linked FIFO of orders stored in a
//! shared slab. A two-level bitmap of occupied levels finds the next best price without walking
//! empty levels, so deep queues (cancel and reduce are O(1) by slot) and wide books (best price is
//! a few word scans) both stay fast. Nothing here allocates per order once the slab and ladders
//! have grown to the working size.

use serde::{Deserialize, Serialize};

use crate::command::{
    InstrumentId, OrderId, ParticipantId, SelfTradePrevention, Side, TimeInForce, Timestamp,
};

/// Slab index meaning "no order".
pub const NIL: u32 = u32::MAX;

/// A resting order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub owner: ParticipantId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price_ticks: u64,
    pub remaining_lots: u64,
    pub original_lots: u64,
    pub time_in_force: TimeInForce,
    pub self_trade: SelfTradePrevention,
    pub accepted_at: Timestamp,
    #[serde(skip, default = "nil")]
    prev: u32,
    #[serde(skip, default = "nil")]
    next: u32,
}

fn nil() -> u32 {
    NIL
}

impl Order {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: OrderId,
        owner: ParticipantId,
        instrument: InstrumentId,
        side: Side,
        price_ticks: u64,
        lots: u64,
        time_in_force: TimeInForce,
        self_trade: SelfTradePrevention,
        accepted_at: Timestamp,
    ) -> Order {
        Order {
            id,
            owner,
            instrument,
            side,
            price_ticks,
            remaining_lots: lots,
            original_lots: lots,
            time_in_force,
            self_trade,
            accepted_at,
            prev: NIL,
            next: NIL,
        }
    }

    /// The next order at the same price, in time priority.
    pub fn next_slot(&self) -> u32 {
        self.next
    }

    /// A copy without its links into the slab's queues, which depend on slot history rather
    /// than on the state: the form snapshots hold, so that equal states give equal snapshots.
    pub(crate) fn detached(&self) -> Order {
        Order {
            prev: NIL,
            next: NIL,
            ..self.clone()
        }
    }
}

/// Orders per chunk of the slab, and free slots per chunk of its free list.
const SLAB_CHUNK_BITS: u32 = 13;
const SLAB_CHUNK: usize = 1 << SLAB_CHUNK_BITS;

/// Storage for resting orders, addressed by slot. Freed slots are reused (LIFO, so hot).
///
/// Orders live in chunks of `SLAB_CHUNK`, and so do free slots: growing the slab adds a chunk
/// instead of copying every order into a vector twice the size, which with a million resting
/// orders stalled the engine thread for tens of milliseconds.
#[derive(Clone, Debug, Default)]
pub struct OrderSlab {
    chunks: Vec<Vec<Order>>,
    /// Slots given out so far (the next new slot).
    slots: u32,
    free: Vec<Vec<u32>>,
    /// Orders held (slots given out and not freed).
    live: usize,
}

impl OrderSlab {
    pub fn with_capacity(capacity: usize) -> OrderSlab {
        OrderSlab {
            chunks: vec![Vec::with_capacity(capacity.min(SLAB_CHUNK))],
            slots: 0,
            free: Vec::new(),
            live: 0,
        }
    }

    pub fn insert(&mut self, order: Order) -> u32 {
        self.live += 1;
        if let Some(slot) = self.pop_free() {
            *self.get_mut(slot) = order;
            return slot;
        }
        let slot = self.slots;
        assert!(slot != NIL, "order slab exhausted");
        let chunk = (slot >> SLAB_CHUNK_BITS) as usize;
        if chunk == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(SLAB_CHUNK));
        }
        self.chunks[chunk].push(order);
        self.slots += 1;
        slot
    }

    fn pop_free(&mut self) -> Option<u32> {
        let last = self.free.last_mut()?;
        let slot = last.pop();
        if last.is_empty() {
            self.free.pop();
        }
        slot
    }

    pub fn remove(&mut self, slot: u32) {
        debug_assert!(!self.free.iter().flatten().any(|free| *free == slot));
        self.live -= 1;
        match self.free.last_mut() {
            Some(last) if last.len() < SLAB_CHUNK => last.push(slot),
            _ => {
                let mut chunk = Vec::with_capacity(SLAB_CHUNK);
                chunk.push(slot);
                self.free.push(chunk);
            }
        }
    }

    #[inline]
    pub fn get(&self, slot: u32) -> &Order {
        &self.chunks[(slot >> SLAB_CHUNK_BITS) as usize][slot as usize & (SLAB_CHUNK - 1)]
    }

    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> &mut Order {
        &mut self.chunks[(slot >> SLAB_CHUNK_BITS) as usize][slot as usize & (SLAB_CHUNK - 1)]
    }

    /// Resting orders held.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}

/// Resting order id → slab slot, split over `INDEX_SHARDS` maps by id so that no single map
/// grows large: growing a map rehashes every entry in it at once, on the engine thread, and one
/// map of a million orders took tens of milliseconds to double, while a shard of it holds a
/// thousandth. The shard array is one small, hot allocation, so a lookup costs no extra miss.
#[derive(Clone, Debug)]
pub(crate) struct OrderIndex {
    shards: Box<[rustc_hash::FxHashMap<OrderId, u32>]>,
    len: usize,
}

const INDEX_SHARDS_BITS: u32 = 10;
const INDEX_SHARDS: usize = 1 << INDEX_SHARDS_BITS;

impl Default for OrderIndex {
    fn default() -> OrderIndex {
        OrderIndex {
            shards: (0..INDEX_SHARDS)
                .map(|_| rustc_hash::FxHashMap::default())
                .collect(),
            len: 0,
        }
    }
}

impl OrderIndex {
    /// The shard of an id: the top bits of a multiplicative hash, so that the ids in one shard
    /// are not an arithmetic progression (which the maps' own hash would crowd together).
    #[inline]
    fn shard(id: OrderId) -> usize {
        (id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - INDEX_SHARDS_BITS)) as usize
    }

    #[inline]
    pub(crate) fn get(&self, id: &OrderId) -> Option<&u32> {
        self.shards[Self::shard(*id)].get(id)
    }

    #[inline]
    pub(crate) fn insert(&mut self, id: OrderId, slot: u32) -> Option<u32> {
        let previous = self.shards[Self::shard(id)].insert(id, slot);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    #[inline]
    pub(crate) fn remove(&mut self, id: &OrderId) -> Option<u32> {
        let removed = self.shards[Self::shard(*id)].remove(id);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &u32> {
        self.shards.iter().flat_map(|shard| shard.values())
    }
}

/// One price level: a FIFO of orders and the lots they rest.
#[derive(Clone, Copy, Debug)]
struct Level {
    head: u32,
    tail: u32,
    lots: u64,
    orders: u32,
}

const EMPTY_LEVEL: Level = Level {
    head: NIL,
    tail: NIL,
    lots: 0,
    orders: 0,
};

/// A set of level indices with fast "next occupied at or above / at or below" queries.
/// Level 0 has one bit per price; level 1 one bit per non-empty word of level 0.
#[derive(Clone, Debug, Default)]
struct LevelSet {
    words: Vec<u64>,
    summary: Vec<u64>,
}

impl LevelSet {
    fn grow(&mut self, levels: usize) {
        let words = levels.div_ceil(64);
        if self.words.len() < words {
            self.words.resize(words, 0);
            self.summary.resize(words.div_ceil(64), 0);
        }
    }

    fn insert(&mut self, index: usize) {
        let word = index >> 6;
        self.words[word] |= 1 << (index & 63);
        self.summary[word >> 6] |= 1 << (word & 63);
    }

    fn remove(&mut self, index: usize) {
        let word = index >> 6;
        self.words[word] &= !(1 << (index & 63));
        if self.words[word] == 0 {
            self.summary[word >> 6] &= !(1 << (word & 63));
        }
    }

    /// The smallest member at or above `index`.
    fn at_or_above(&self, index: usize) -> Option<usize> {
        let word = index >> 6;
        if word >= self.words.len() {
            return None;
        }
        let bits = self.words[word] & (u64::MAX << (index & 63));
        if bits != 0 {
            return Some((word << 6) | bits.trailing_zeros() as usize);
        }
        let next_word = self.summary_at_or_above(word + 1)?;
        Some((next_word << 6) | self.words[next_word].trailing_zeros() as usize)
    }

    /// The largest member at or below `index`.
    fn at_or_below(&self, index: usize) -> Option<usize> {
        let mut word = index >> 6;
        let mut bits_mask = u64::MAX >> (63 - (index & 63));
        if word >= self.words.len() {
            word = self.words.len().checked_sub(1)?;
            bits_mask = u64::MAX;
        }
        let bits = self.words[word] & bits_mask;
        if bits != 0 {
            return Some((word << 6) | (63 - bits.leading_zeros() as usize));
        }
        let previous_word = self.summary_at_or_below(word.checked_sub(1)?)?;
        Some((previous_word << 6) | (63 - self.words[previous_word].leading_zeros() as usize))
    }

    fn summary_at_or_above(&self, word: usize) -> Option<usize> {
        let mut block = word >> 6;
        if block >= self.summary.len() {
            return None;
        }
        let mut bits = self.summary[block] & (u64::MAX << (word & 63));
        loop {
            if bits != 0 {
                return Some((block << 6) | bits.trailing_zeros() as usize);
            }
            block += 1;
            if block >= self.summary.len() {
                return None;
            }
            bits = self.summary[block];
        }
    }

    fn summary_at_or_below(&self, word: usize) -> Option<usize> {
        let mut block = word >> 6;
        let mut bits = self.summary[block] & (u64::MAX >> (63 - (word & 63)));
        loop {
            if bits != 0 {
                return Some((block << 6) | (63 - bits.leading_zeros() as usize));
            }
            block = block.checked_sub(1)?;
            bits = self.summary[block];
        }
    }
}

/// One side of a book.
#[derive(Clone, Debug)]
pub struct Ladder {
    side: Side,
    levels: Vec<Level>,
    occupied: LevelSet,
    best: Option<u64>,
    orders: u32,
    price_levels_max: u32,
}

impl Ladder {
    pub fn new(side: Side, price_levels_max: u32) -> Ladder {
        Ladder {
            side,
            levels: Vec::new(),
            occupied: LevelSet::default(),
            best: None,
            orders: 0,
            price_levels_max,
        }
    }

    /// The best price: highest bid or lowest ask.
    #[inline]
    pub fn best(&self) -> Option<u64> {
        self.best
    }

    /// Resting orders on this side.
    pub fn orders(&self) -> u32 {
        self.orders
    }

    /// The oldest order at `price`, or `NIL`.
    #[inline]
    pub fn head(&self, price_ticks: u64) -> u32 {
        self.levels
            .get(price_ticks as usize)
            .map_or(NIL, |level| level.head)
    }

    /// Lots resting at `price`.
    pub fn lots_at(&self, price_ticks: u64) -> u64 {
        self.levels
            .get(price_ticks as usize)
            .map_or(0, |level| level.lots)
    }

    /// Orders resting at `price`.
    pub fn orders_at(&self, price_ticks: u64) -> u32 {
        self.levels
            .get(price_ticks as usize)
            .map_or(0, |level| level.orders)
    }

    /// The next occupied price after `price_ticks`, moving away from the best.
    pub fn next_worse(&self, price_ticks: u64) -> Option<u64> {
        let found = match self.side {
            Side::Buy => self
                .occupied
                .at_or_below((price_ticks as usize).checked_sub(1)?),
            Side::Sell => self.occupied.at_or_above(price_ticks as usize + 1),
        };
        found.map(|index| index as u64)
    }

    /// Appends the order at `slot` to the tail of its price level.
    pub fn push_back(&mut self, slab: &mut OrderSlab, slot: u32) {
        let (price, lots) = {
            let order = slab.get(slot);
            debug_assert_eq!(order.side, self.side);
            (order.price_ticks, order.remaining_lots)
        };
        assert!(
            price < u64::from(self.price_levels_max),
            "price beyond the ladder"
        );
        let index = price as usize;
        if index >= self.levels.len() {
            self.grow(index + 1);
        }
        let level = &mut self.levels[index];
        let tail = level.tail;
        {
            let order = slab.get_mut(slot);
            order.prev = tail;
            order.next = NIL;
        }
        if tail == NIL {
            level.head = slot;
            self.occupied.insert(index);
        } else {
            slab.get_mut(tail).next = slot;
        }
        level.tail = slot;
        level.lots += lots;
        level.orders += 1;
        self.orders += 1;
        let better = match (self.best, self.side) {
            (None, _) => true,
            (Some(best), Side::Buy) => price > best,
            (Some(best), Side::Sell) => price < best,
        };
        if better {
            self.best = Some(price);
        }
    }

    /// Unlinks the order at `slot` from its level (the slab entry stays for the caller to free).
    pub fn unlink(&mut self, slab: &mut OrderSlab, slot: u32) {
        let (price, lots, prev, next) = {
            let order = slab.get(slot);
            (
                order.price_ticks,
                order.remaining_lots,
                order.prev,
                order.next,
            )
        };
        let index = price as usize;
        if prev != NIL {
            slab.get_mut(prev).next = next;
        }
        if next != NIL {
            slab.get_mut(next).prev = prev;
        }
        let level = &mut self.levels[index];
        if level.head == slot {
            level.head = next;
        }
        if level.tail == slot {
            level.tail = prev;
        }
        level.lots -= lots;
        level.orders -= 1;
        self.orders -= 1;
        if level.orders == 0 {
            debug_assert_eq!(level.lots, 0);
            *level = EMPTY_LEVEL;
            self.occupied.remove(index);
            if self.best == Some(price) {
                self.best = self.next_worse(price);
            }
        }
    }

    /// Takes `lots` off the order at `slot` (by a fill or a reduction), keeping its place.
    /// The caller unlinks the order if nothing remains.
    #[inline]
    pub fn take(&mut self, slab: &mut OrderSlab, slot: u32, lots: u64) {
        let order = slab.get_mut(slot);
        debug_assert!(lots <= order.remaining_lots);
        order.remaining_lots -= lots;
        let level = &mut self.levels[order.price_ticks as usize];
        level.lots -= lots;
    }

    fn grow(&mut self, levels_needed: usize) {
        let levels = levels_needed
            .next_power_of_two()
            .max(64)
            .min(self.price_levels_max as usize);
        self.levels.resize(levels, EMPTY_LEVEL);
        self.occupied.grow(levels);
    }

    /// Pre-grows the ladder to index prices below `price_ticks`, so that steady-state trading
    /// does not reallocate.
    pub fn reserve_prices(&mut self, price_ticks: u64) {
        let wanted = (price_ticks as usize).min(self.price_levels_max as usize);
        if wanted > self.levels.len() {
            self.grow(wanted);
        }
    }
}

/// Both sides of one instrument's book.
#[derive(Clone, Debug)]
pub struct Book {
    pub bids: Ladder,
    pub asks: Ladder,
}

impl Book {
    pub fn new(price_levels_max: u32) -> Book {
        Book {
            bids: Ladder::new(Side::Buy, price_levels_max),
            asks: Ladder::new(Side::Sell, price_levels_max),
        }
    }

    #[inline]
    pub fn side(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    #[inline]
    pub fn side_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Resting orders on both sides.
    pub fn orders(&self) -> u32 {
        self.bids.orders + self.asks.orders
    }

    /// Visits the orders of one side in priority order (best price first, then time).
    pub fn for_each_in_priority<F: FnMut(u32, &Order)>(
        &self,
        side: Side,
        slab: &OrderSlab,
        mut visit: F,
    ) {
        let ladder = self.side(side);
        let mut price = ladder.best();
        while let Some(level_price) = price {
            let mut slot = ladder.head(level_price);
            while slot != NIL {
                let order = slab.get(slot);
                visit(slot, order);
                slot = order.next;
            }
            price = ladder.next_worse(level_price);
        }
    }

    /// Aggregated depth: up to `levels_max` (price, lots, orders) per side, best first.
    pub fn depth(&self, side: Side, levels_max: usize) -> Vec<(u64, u64, u32)> {
        let ladder = self.side(side);
        let mut out = Vec::with_capacity(levels_max.min(64));
        let mut price = ladder.best();
        while let Some(level_price) = price {
            if out.len() >= levels_max {
                break;
            }
            out.push((
                level_price,
                ladder.lots_at(level_price),
                ladder.orders_at(level_price),
            ));
            price = ladder.next_worse(level_price);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_set(members: &[usize], size: usize) {
        let mut set = LevelSet::default();
        set.grow(size);
        for &m in members {
            set.insert(m);
        }
        for probe in 0..size {
            let above = members.iter().copied().filter(|&m| m >= probe).min();
            let below = members.iter().copied().filter(|&m| m <= probe).max();
            assert_eq!(set.at_or_above(probe), above, "at_or_above({probe})");
            assert_eq!(set.at_or_below(probe), below, "at_or_below({probe})");
        }
    }

    #[test]
    fn level_set_finds_neighbours_across_words_and_blocks() {
        check_set(&[], 200);
        check_set(&[0], 130);
        check_set(&[63, 64, 4095, 4096, 9000], 9100);
        check_set(&[5, 70_000], 70_100);
    }

    #[test]
    fn level_set_forgets_emptied_words() {
        let mut set = LevelSet::default();
        set.grow(10_000);
        set.insert(5000);
        set.insert(100);
        set.remove(5000);
        assert_eq!(set.at_or_above(101), None);
        assert_eq!(set.at_or_below(9999), Some(100));
    }

    fn order(id: u64) -> Order {
        Order::new(
            OrderId(id),
            ParticipantId(1),
            InstrumentId(0),
            Side::Buy,
            100,
            id + 1,
            TimeInForce::GoodTillCancelled,
            SelfTradePrevention::CancelIncoming,
            0,
        )
    }

    #[test]
    fn slab_and_index_keep_every_order_across_chunks_and_reused_slots() {
        let mut slab = OrderSlab::with_capacity(16);
        let mut index = OrderIndex::default();
        let mut live = std::collections::BTreeMap::new();
        // Past two slab chunks and a free-list chunk: insert, free two in three, insert again.
        for id in 0..3 * SLAB_CHUNK as u64 {
            let slot = slab.insert(order(id));
            assert_eq!(index.insert(OrderId(id), slot), None);
            live.insert(id, slot);
        }
        for id in (0..3 * SLAB_CHUNK as u64).filter(|id| id % 3 != 0) {
            let slot = index.remove(&OrderId(id)).expect("indexed");
            assert_eq!(live.remove(&id), Some(slot));
            slab.remove(slot);
        }
        for id in 100_000..100_000 + 2 * SLAB_CHUNK as u64 {
            let slot = slab.insert(order(id));
            index.insert(OrderId(id), slot);
            live.insert(id, slot);
        }
        assert_eq!(slab.len(), live.len());
        assert_eq!(index.len(), live.len());
        // Freed slots were reused before any new one: the slab never grew past its peak.
        assert_eq!(slab.slots as usize, 3 * SLAB_CHUNK);
        for (id, slot) in &live {
            assert_eq!(index.get(&OrderId(*id)), Some(slot));
            assert_eq!(slab.get(*slot).id, OrderId(*id));
            assert_eq!(slab.get(*slot).remaining_lots, id + 1);
        }
        assert_eq!(index.get(&OrderId(1)), None);
        assert_eq!(index.values().count(), live.len());
    }
}
