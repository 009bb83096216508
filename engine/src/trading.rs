//! Continuous trading: placing, matching, cancelling and reducing orders, and the settlement of
//! every fill, delivery versus payment.
//!
//! An order is checked against every rule before anything changes (so a rejection leaves no
//! trace), then its cash or units are reserved, then it matches at the resting orders' prices in
//! price-time priority, then its remainder rests, is cancelled (immediate-or-cancel, self-trade)
//! or, for fill-or-kill, was proven not to exist before matching began.

use crate::book::{Ladder, Order, OrderSlab, NIL};
use crate::command::{
    Ack, CancelReason, Event, InstrumentId, OrderId, ParticipantId, RejectReason,
    SelfTradePrevention, Side, TimeInForce, Timestamp,
};
use crate::instrument::Instrument;
use crate::ledger::Participant;
use crate::Engine;

/// A `PlaceOrder` command's fields, with its authenticated owner.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlaceRequest {
    pub owner: ParticipantId,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price_ticks: u64,
    pub lots: u64,
    pub time_in_force: TimeInForce,
    pub self_trade: SelfTradePrevention,
}

/// What an order that passed every rule does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Trade,
    /// A fill-or-kill order that cannot trade in full at once.
    Kill,
}

/// The incoming order while it matches.
struct Taker {
    id: OrderId,
    owner: ParticipantId,
    side: Side,
    limit_ticks: u64,
    remaining_lots: u64,
    self_trade: SelfTradePrevention,
}

/// Does an order on `side` limited at `limit_ticks` trade with the opposite side's `best_ticks`?
#[inline]
fn crosses(side: Side, limit_ticks: u64, best_ticks: u64) -> bool {
    match side {
        Side::Buy => best_ticks <= limit_ticks,
        Side::Sell => best_ticks >= limit_ticks,
    }
}

/// The parts of the engine one instrument's trading touches, borrowed apart so that the book,
/// the ledger and the order slab can change in one step.
struct Market<'a> {
    instrument: &'a mut Instrument,
    participants: &'a mut [Participant],
    orders: &'a mut OrderSlab,
    order_slots: &'a mut crate::book::OrderIndex,
    now: Timestamp,
}

impl Engine {
    pub(crate) fn place_order(
        &mut self,
        request: PlaceRequest,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let verdict = self.check_order(&request)?;
        let id = OrderId(self.next_order_id);
        self.next_order_id += 1;
        events.push(Event::OrderAccepted {
            order: id,
            instrument: request.instrument,
            owner: request.owner,
            side: request.side,
            price_ticks: request.price_ticks,
            lots: request.lots,
            time_in_force: request.time_in_force,
        });
        if verdict == Verdict::Kill {
            // Nothing was reserved and nothing trades: the order is killed as it arrives.
            let reason = CancelReason::FillOrKillUnfillable;
            events.push(Event::OrderCancelled {
                order: id,
                owner: request.owner,
                instrument: request.instrument,
                remaining_lots: request.lots,
                reason,
            });
            return Ok(Ack::Order(id));
        }
        let mut market = self.market(request.instrument);
        market.reserve_for_taker(&request);
        let mut taker = Taker {
            id,
            owner: request.owner,
            side: request.side,
            limit_ticks: request.price_ticks,
            remaining_lots: request.lots,
            self_trade: request.self_trade,
        };
        let stopped_by_self_trade = market.match_taker(&mut taker, events);
        if taker.remaining_lots == 0 {
            return Ok(Ack::Order(id));
        }
        let reason = match (stopped_by_self_trade, request.time_in_force) {
            (false, TimeInForce::GoodTillCancelled) => {
                market.rest(&request, &taker);
                events.push(Event::OrderRested {
                    order: id,
                    remaining_lots: taker.remaining_lots,
                });
                return Ok(Ack::Order(id));
            }
            (true, _) => CancelReason::SelfTrade,
            (false, _) => {
                debug_assert!(
                    request.time_in_force != TimeInForce::FillOrKill,
                    "fill-or-kill left a remainder"
                );
                CancelReason::ImmediateOrCancelRemainder
            }
        };
        market.release(
            request.owner,
            request.side,
            request.price_ticks,
            taker.remaining_lots,
        );
        events.push(Event::OrderCancelled {
            order: id,
            owner: request.owner,
            instrument: request.instrument,
            remaining_lots: taker.remaining_lots,
            reason,
        });
        Ok(Ack::Order(id))
    }

    /// Every rule an order must pass before it rests or trades, in the order of `RejectReason`.
    /// A fill-or-kill order that passes them all but cannot trade in full is to be killed.
    fn check_order(&mut self, request: &PlaceRequest) -> Result<Verdict, RejectReason> {
        let now = self.now;
        let instrument = self
            .instruments
            .get_mut(request.instrument.0 as usize)
            .ok_or(RejectReason::UnknownInstrument)?;
        if request.lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        if request.lots > self.config.order_lots_max {
            return Err(RejectReason::QuantityTooLarge);
        }
        if request.price_ticks == 0 {
            return Err(RejectReason::PriceNotPositive);
        }
        if request.price_ticks > instrument.ceiling_ticks_cached(now) {
            return Err(RejectReason::PriceAboveCeiling);
        }
        if request.price_ticks < instrument.terms.price_floor_ticks {
            return Err(RejectReason::PriceBelowFloor);
        }
        if instrument.status.matured {
            return Err(RejectReason::InstrumentMatured);
        }
        if !instrument.status.trading_open {
            return Err(RejectReason::TradingClosed);
        }
        let holding = instrument.holdings.get(&request.owner);
        match request.side {
            Side::Buy => {
                let notional = instrument
                    .notional_minor(request.price_ticks, request.lots)
                    .ok_or(RejectReason::AmountTooLarge)?;
                if self.participants[request.owner.0 as usize]
                    .cash
                    .free_minor()
                    < notional
                {
                    return Err(RejectReason::InsufficientCash);
                }
                let exposure = holding.map_or(0, |h| h.cap_exposure_lots());
                if exposure + request.lots
                    > instrument.holding_cap_lots(instrument.lots_outstanding())
                {
                    return Err(RejectReason::HoldingCapExceeded);
                }
            }
            Side::Sell => {
                let unreserved = holding.map_or(0, |h| h.unreserved_lots());
                if unreserved < request.lots {
                    return Err(RejectReason::InsufficientUnits);
                }
                if holding.map_or(0, |h| h.free_lots(now)) < request.lots {
                    return Err(RejectReason::LockedIn);
                }
            }
        }
        match request.time_in_force {
            TimeInForce::GoodTillCancelled => {
                // A full book refuses only orders that could rest: one that trades in full at
                // once takes no room. The walk runs only when a bound is reached.
                let book_full = instrument.book.orders() >= self.config.orders_per_book_max;
                let market_full = self.orders.len() >= self.config.orders_max as usize;
                if (book_full || market_full)
                    && !fillable(
                        instrument.book.side(request.side.opposite()),
                        &self.orders,
                        request,
                    )
                {
                    return Err(if book_full {
                        RejectReason::BookFull
                    } else {
                        RejectReason::OrdersFull
                    });
                }
            }
            TimeInForce::FillOrKill => {
                let opposite = instrument.book.side(request.side.opposite());
                if !fillable(opposite, &self.orders, request) {
                    return Ok(Verdict::Kill);
                }
            }
            TimeInForce::ImmediateOrCancel => {}
        }
        Ok(Verdict::Trade)
    }

    pub(crate) fn cancel_order(
        &mut self,
        who: ParticipantId,
        order: OrderId,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let (slot, instrument) = self.owned_order(who, order)?;
        self.market(instrument)
            .cancel_resting(slot, CancelReason::Requested, events);
        Ok(Ack::Done)
    }

    pub(crate) fn reduce_order(
        &mut self,
        who: ParticipantId,
        order: OrderId,
        reduce_by_lots: u64,
        events: &mut Vec<Event>,
    ) -> Result<Ack, RejectReason> {
        let (slot, instrument) = self.owned_order(who, order)?;
        if reduce_by_lots == 0 {
            return Err(RejectReason::QuantityZero);
        }
        let mut market = self.market(instrument);
        let resting = market.orders.get(slot);
        let (owner, side, price_ticks, remaining_lots) = (
            resting.owner,
            resting.side,
            resting.price_ticks,
            resting.remaining_lots,
        );
        if reduce_by_lots >= remaining_lots {
            market.cancel_resting(slot, CancelReason::Requested, events);
            return Ok(Ack::Done);
        }
        market
            .instrument
            .book
            .side_mut(side)
            .take(market.orders, slot, reduce_by_lots);
        market.release(owner, side, price_ticks, reduce_by_lots);
        events.push(Event::OrderReduced {
            order,
            reduced_by_lots: reduce_by_lots,
            remaining_lots: remaining_lots - reduce_by_lots,
        });
        Ok(Ack::Done)
    }

    /// Cancels a resting order for a reason other than its owner's request (suspension).
    pub(crate) fn cancel_for_owner(
        &mut self,
        order: OrderId,
        reason: CancelReason,
        events: &mut Vec<Event>,
    ) {
        if let Some(&slot) = self.order_slots.get(&order) {
            let instrument = self.orders.get(slot).instrument;
            self.market(instrument).cancel_resting(slot, reason, events);
        }
    }

    /// The slot and instrument of a resting order that `who` owns. An id the engine gave out
    /// that is no longer resting is told apart from one it never gave.
    fn owned_order(
        &self,
        who: ParticipantId,
        order: OrderId,
    ) -> Result<(u32, InstrumentId), RejectReason> {
        let Some(&slot) = self.order_slots.get(&order) else {
            let given = order.0 >= 1 && order.0 < self.next_order_id;
            return Err(if given {
                RejectReason::OrderNotResting
            } else {
                RejectReason::UnknownOrder
            });
        };
        let resting = self.orders.get(slot);
        if resting.owner != who {
            return Err(RejectReason::NotOrderOwner);
        }
        Ok((slot, resting.instrument))
    }

    fn market(&mut self, instrument: InstrumentId) -> Market<'_> {
        Market {
            instrument: &mut self.instruments[instrument.0 as usize],
            participants: &mut self.participants,
            orders: &mut self.orders,
            order_slots: &mut self.order_slots,
            now: self.now,
        }
    }

    /// Cancels every resting order of an instrument (at maturity), oldest first per side.
    pub(crate) fn cancel_all_orders(&mut self, instrument: InstrumentId, events: &mut Vec<Event>) {
        let mut market = self.market(instrument);
        for side in [Side::Buy, Side::Sell] {
            while let Some(best) = market.instrument.book.side(side).best() {
                let slot = market.instrument.book.side(side).head(best);
                market.cancel_resting(slot, CancelReason::Matured, events);
            }
        }
    }
}

/// Could `request` trade in full against `opposite` right now? Walks the orders it would meet,
/// honouring self-trade prevention, without changing anything.
fn fillable(opposite: &Ladder, orders: &OrderSlab, request: &PlaceRequest) -> bool {
    let mut needed_lots = request.lots;
    let mut price = opposite.best();
    while let Some(level_price) = price {
        if !crosses(request.side, request.price_ticks, level_price) {
            return false;
        }
        let mut slot = opposite.head(level_price);
        while slot != NIL {
            let resting = orders.get(slot);
            if resting.owner == request.owner {
                if request.self_trade != SelfTradePrevention::CancelResting {
                    return false;
                }
            } else if resting.remaining_lots >= needed_lots {
                return true;
            } else {
                needed_lots -= resting.remaining_lots;
            }
            slot = resting.next_slot();
        }
        price = opposite.next_worse(level_price);
    }
    false
}

impl Market<'_> {
    /// Reserves what the incoming order could consume: cash at its limit for a buy, units for a sell.
    fn reserve_for_taker(&mut self, request: &PlaceRequest) {
        let holding = self.instrument.holdings.entry(request.owner).or_default();
        match request.side {
            Side::Buy => {
                let notional =
                    request.price_ticks * request.lots * self.instrument.terms.tick_value_minor;
                self.participants[request.owner.0 as usize]
                    .cash
                    .reserved_minor += notional;
                holding.open_buy_lots += request.lots;
            }
            Side::Sell => {
                holding.prune_locks(self.now);
                holding.reserved_lots += request.lots;
            }
        }
    }

    /// Releases the reservation behind `lots` of an order that will not trade.
    fn release(&mut self, owner: ParticipantId, side: Side, price_ticks: u64, lots: u64) {
        let holding = self
            .instrument
            .holdings
            .get_mut(&owner)
            .expect("an order's owner has a holding entry");
        match side {
            Side::Buy => {
                holding.open_buy_lots -= lots;
                let amount = price_ticks * lots * self.instrument.terms.tick_value_minor;
                self.participants[owner.0 as usize].cash.release(amount);
            }
            Side::Sell => holding.reserved_lots -= lots,
        }
    }

    /// Matches the taker against the opposite side until it is filled, no longer crosses, or
    /// meets its own order under a prevention mode that stops it. Returns true in that last case.
    fn match_taker(&mut self, taker: &mut Taker, events: &mut Vec<Event>) -> bool {
        let maker_side = taker.side.opposite();
        while taker.remaining_lots > 0 {
            let ladder = self.instrument.book.side(maker_side);
            let Some(best) = ladder.best() else {
                return false;
            };
            if !crosses(taker.side, taker.limit_ticks, best) {
                return false;
            }
            let slot = ladder.head(best);
            let maker = self.orders.get(slot);
            let (maker_id, maker_owner, maker_lots) = (maker.id, maker.owner, maker.remaining_lots);
            if maker_owner == taker.owner {
                match taker.self_trade {
                    SelfTradePrevention::CancelIncoming => return true,
                    SelfTradePrevention::CancelResting => {
                        self.cancel_resting(slot, CancelReason::SelfTrade, events);
                        continue;
                    }
                    SelfTradePrevention::CancelBoth => {
                        self.cancel_resting(slot, CancelReason::SelfTrade, events);
                        return true;
                    }
                }
            }
            let lots = taker.remaining_lots.min(maker_lots);
            let notional_minor = self.settle(taker, maker_owner, best, lots);
            taker.remaining_lots -= lots;
            let maker_remaining_lots = maker_lots - lots;
            let ladder = self.instrument.book.side_mut(maker_side);
            if maker_remaining_lots == 0 {
                ladder.unlink(self.orders, slot);
                self.orders.remove(slot);
                self.order_slots.remove(&maker_id);
            } else {
                ladder.take(self.orders, slot, lots);
            }
            events.push(Event::Trade {
                instrument: self.instrument.id,
                maker_order: maker_id,
                taker_order: taker.id,
                maker: maker_owner,
                taker: taker.owner,
                taker_side: taker.side,
                price_ticks: best,
                lots,
                notional_minor,
                maker_remaining_lots,
                taker_remaining_lots: taker.remaining_lots,
            });
        }
        false
    }

    /// Delivery versus payment for one fill at the maker's price: the buyer's reserved cash goes
    /// to the seller and the seller's reserved units to the buyer. A taker buying below its limit
    /// gets the difference back in the same step. Returns the notional.
    fn settle(&mut self, taker: &Taker, maker: ParticipantId, price_ticks: u64, lots: u64) -> u64 {
        let tick_value_minor = self.instrument.terms.tick_value_minor;
        // Cannot overflow: the buyer's reservation at its own limit, which is at least this
        // price, was computed with checked arithmetic when it was accepted.
        let notional_minor = price_ticks * lots * tick_value_minor;
        let (buyer, seller, buyer_reserved_minor) = match taker.side {
            Side::Buy => (
                taker.owner,
                maker,
                taker.limit_ticks * lots * tick_value_minor,
            ),
            Side::Sell => (maker, taker.owner, notional_minor),
        };
        let lock_until = self.instrument.lock_until(self.now);

        let buyer_cash = &mut self.participants[buyer.0 as usize].cash;
        buyer_cash.release(buyer_reserved_minor - notional_minor);
        buyer_cash.pay_reserved(notional_minor);
        let buyer_holding = self
            .instrument
            .holdings
            .get_mut(&buyer)
            .expect("a buyer's holding was opened when it ordered");
        buyer_holding.open_buy_lots -= lots;
        buyer_holding.receive(lots, self.now, lock_until);

        let seller_holding = self
            .instrument
            .holdings
            .get_mut(&seller)
            .expect("a seller holds the units it sells");
        seller_holding.reserved_lots -= lots;
        seller_holding.lots -= lots;
        self.participants[seller.0 as usize]
            .cash
            .credit(notional_minor);
        notional_minor
    }

    /// Rests the taker's remainder at the tail of its price level.
    fn rest(&mut self, request: &PlaceRequest, taker: &Taker) {
        let mut order = Order::new(
            taker.id,
            request.owner,
            request.instrument,
            request.side,
            request.price_ticks,
            request.lots,
            request.time_in_force,
            request.self_trade,
            self.now,
        );
        order.remaining_lots = taker.remaining_lots;
        let slot = self.orders.insert(order);
        self.instrument
            .book
            .side_mut(request.side)
            .push_back(self.orders, slot);
        self.order_slots.insert(taker.id, slot);
    }

    /// Takes a resting order off the book and releases its reservation.
    fn cancel_resting(&mut self, slot: u32, reason: CancelReason, events: &mut Vec<Event>) {
        let resting = self.orders.get(slot);
        let (id, owner, side, price_ticks, remaining_lots) = (
            resting.id,
            resting.owner,
            resting.side,
            resting.price_ticks,
            resting.remaining_lots,
        );
        self.instrument
            .book
            .side_mut(side)
            .unlink(self.orders, slot);
        self.orders.remove(slot);
        self.order_slots.remove(&id);
        self.release(owner, side, price_ticks, remaining_lots);
        events.push(Event::OrderCancelled {
            order: id,
            owner,
            instrument: self.instrument.id,
            remaining_lots,
            reason,
        });
    }
}
