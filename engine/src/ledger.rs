//! Accounts: each participant's cash, each holder's units of an instrument, and the reservations
//! (holds) that back every resting order and open subscription.
//!
//! The ledger never lends: a buy reserves cash and a sell reserves units before anything rests,
//! and a fill moves reserved cash and reserved units in the same step (delivery versus payment).

use serde::{Deserialize, Serialize};

use crate::command::{RejectReason, Role, Timestamp};

/// A participant and its cash account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub role: Role,
    pub name: String,
    /// Organizations only: licensed by the regulator to redeem vouchers and service value.
    pub accredited: bool,
    /// Suspended by the operator: every command it sends is refused until it is reinstated.
    pub suspended: bool,
    pub cash: CashAccount,
}

/// Cash in the market's minor units. `reserved_minor` backs resting buy orders and open
/// subscriptions; only `free_minor()` can be committed or withdrawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashAccount {
    pub balance_minor: u64,
    pub reserved_minor: u64,
}

impl CashAccount {
    #[inline]
    pub fn free_minor(&self) -> u64 {
        self.balance_minor - self.reserved_minor
    }

    #[inline]
    pub fn reserve(&mut self, amount_minor: u64) -> Result<(), RejectReason> {
        if self.free_minor() < amount_minor {
            return Err(RejectReason::InsufficientCash);
        }
        self.reserved_minor += amount_minor;
        Ok(())
    }

    #[inline]
    pub fn release(&mut self, amount_minor: u64) {
        debug_assert!(amount_minor <= self.reserved_minor);
        self.reserved_minor -= amount_minor;
    }

    /// Pays out of the reservation: the cash leaves the account.
    #[inline]
    pub fn pay_reserved(&mut self, amount_minor: u64) {
        debug_assert!(amount_minor <= self.reserved_minor);
        self.reserved_minor -= amount_minor;
        self.balance_minor -= amount_minor;
    }

    /// Pays out of free cash; the caller has checked `free_minor()`.
    #[inline]
    pub fn pay_free(&mut self, amount_minor: u64) {
        debug_assert!(amount_minor <= self.free_minor());
        self.balance_minor -= amount_minor;
    }

    /// Credits never overflow: every unit of cash entered by a deposit, and deposits are checked
    /// against the ledger total.
    #[inline]
    pub fn credit(&mut self, amount_minor: u64) {
        self.balance_minor += amount_minor;
    }
}

/// Units of one instrument acquired at one time, locked until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub until: Timestamp,
    pub lots: u64,
}

/// One holder's position in one instrument, in lots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub lots: u64,
    /// Backing resting sell orders.
    pub reserved_lots: u64,
    /// Lots of resting buy orders: counted against the holding cap.
    pub open_buy_lots: u64,
    /// Lots subscribed in the open offering: counted against the holding cap.
    pub subscribed_lots: u64,
    /// Lots under notice of withdrawal: held back from sale until paid or the notice is cancelled.
    pub withdrawing_lots: u64,
    /// When the holding last went from no lots to some: for a community share, when the holder
    /// became a member of the issuer. Meaningless while `lots` is zero.
    pub held_since: Timestamp,
    /// Lock-in entries in acquisition order (so also in expiry order).
    pub locks: Vec<Lock>,
}

impl Holding {
    /// Lots still inside their lock-in period at `now`.
    pub fn locked_lots(&self, now: Timestamp) -> u64 {
        self.locks
            .iter()
            .filter(|lock| lock.until > now)
            .map(|lock| lock.lots)
            .sum()
    }

    /// Lots neither reserved for a sale nor under notice of withdrawal.
    pub fn unreserved_lots(&self) -> u64 {
        self.lots - self.reserved_lots - self.withdrawing_lots
    }

    /// Lots that may be sold or withdrawn at `now`.
    pub fn free_lots(&self, now: Timestamp) -> u64 {
        let unreserved = self.unreserved_lots();
        unreserved - self.locked_lots(now).min(unreserved)
    }

    /// Forgets expired locks. Called whenever units are reserved, so that reserved plus the sum
    /// of remaining lock entries never exceeds the lots held.
    pub fn prune_locks(&mut self, now: Timestamp) {
        let expired = self
            .locks
            .iter()
            .take_while(|lock| lock.until <= now)
            .count();
        if expired > 0 {
            self.locks.drain(..expired);
        }
    }

    /// Lots counted against the holding cap: held, being bought, and subscribed.
    pub fn cap_exposure_lots(&self) -> u64 {
        self.lots + self.open_buy_lots + self.subscribed_lots
    }

    pub fn is_empty(&self) -> bool {
        self.lots == 0
            && self.reserved_lots == 0
            && self.open_buy_lots == 0
            && self.subscribed_lots == 0
            && self.withdrawing_lots == 0
    }

    /// Receives lots at `now`, locked until `lock_until` when the instrument has a lock-in.
    pub fn receive(&mut self, lots: u64, now: Timestamp, lock_until: Option<Timestamp>) {
        if self.lots == 0 {
            self.held_since = now;
        }
        self.lots += lots;
        if let Some(until) = lock_until {
            match self.locks.last_mut() {
                Some(last) if last.until == until => last.lots += lots,
                _ => self.locks.push(Lock { until, lots }),
            }
        }
    }
}
