//! The social economy on top of the exchange (DOMAIN.md, "Vouchers", "Time credits", "The
//! collective capital pool and netting", "Surplus rules"): accreditation that gates what an
//! organization may do, vouchers with a private co-payment split, service value of shares, time
//! credits, the collective capital pool with its netting cycles, surplus declarations, and the
//! clock tick that expires and repays what is due.
//!
//! Each capability keeps its own state here and its rules in its own file; `Engine::dispatch`
//! only routes to them.

pub mod accreditation;
mod clock;
pub mod netting;
pub mod pool;
pub mod service_value;
mod surplus;
pub mod time_credits;
pub mod vouchers;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::ParticipantId;

pub use pool::{Pool, Position};
pub use service_value::ServiceValueLedger;
pub use time_credits::TimeLedger;
pub use vouchers::{FunderTotals, ServicePackage, Voucher, VoucherRecord, VoucherStatus, Vouchers};

/// All of the social economy's state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Social {
    pub vouchers: Vouchers,
    pub pool: Pool,
    pub time: TimeLedger,
    pub service_value: ServiceValueLedger,
    /// (organization, year) of every surplus declared.
    pub surpluses_declared: BTreeSet<(ParticipantId, i32)>,
    /// The service categories an organization is accredited for; absent means every category.
    pub categories: BTreeMap<ParticipantId, Vec<String>>,
    /// Bonds and notes not yet matured, by maturity time, for the clock. Derived from the
    /// instruments (rebuilt by `Engine::from_snapshot`).
    pub maturing: BTreeSet<(crate::command::Timestamp, crate::InstrumentId)>,
}

/// The canonical form of `Social`, for the snapshot and the state hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocialSnapshot {
    pub vouchers: vouchers::VouchersSnapshot,
    pub pool: pool::PoolSnapshot,
    pub time: time_credits::TimeSnapshot,
    pub service_value: Vec<(
        (crate::InstrumentId, ParticipantId),
        service_value::Redeemed,
    )>,
    pub surpluses_declared: Vec<(ParticipantId, i32)>,
    pub categories: Vec<(ParticipantId, Vec<String>)>,
}

impl Social {
    pub fn snapshot(&self) -> SocialSnapshot {
        SocialSnapshot {
            vouchers: self.vouchers.snapshot(),
            pool: self.pool.snapshot(),
            time: self.time.snapshot(),
            service_value: self.service_value.snapshot(),
            surpluses_declared: self.surpluses_declared.iter().copied().collect(),
            categories: self
                .categories
                .iter()
                .map(|(organization, categories)| (*organization, categories.clone()))
                .collect(),
        }
    }

    pub fn restore(snapshot: SocialSnapshot) -> Social {
        Social {
            vouchers: Vouchers::restore(snapshot.vouchers),
            pool: Pool::restore(snapshot.pool),
            time: TimeLedger::restore(snapshot.time),
            service_value: ServiceValueLedger::restore(snapshot.service_value),
            surpluses_declared: snapshot.surpluses_declared.into_iter().collect(),
            categories: snapshot.categories.into_iter().collect(),
            maturing: BTreeSet::new(),
        }
    }
}

/// A category or package name check shared by packages and accreditation: 1 to 32 bytes of
/// a-z, 0-9 or '-'.
pub(crate) fn category_is_valid(category: &str) -> bool {
    !category.is_empty()
        && category.len() <= CATEGORY_BYTES_MAX
        && category
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Longest service category, in bytes.
pub const CATEGORY_BYTES_MAX: usize = 32;

/// Splits `amount` over `weights` in proportion, rounding each share down to a minor unit and
/// giving the minor units left over one each to the largest remainders (ties to the earlier
/// entry). Shares sum to `amount` exactly when `amount` ≤ the sum of the weights; no share
/// exceeds its weight.
pub(crate) fn pro_rata(amount: u64, weights: &[u64]) -> Vec<u64> {
    let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let amount = u128::from(amount).min(total);
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given: u128 = 0;
    for (index, weight) in weights.iter().enumerate() {
        let product = amount * u128::from(*weight);
        let share = product / total;
        given += share;
        shares.push(share as u64);
        remainders.push((product % total, index));
    }
    let mut left = amount - given;
    // Largest remainder first, earlier entry first among equals.
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, index) in remainders {
        if left == 0 {
            break;
        }
        shares[index] += 1;
        left -= 1;
    }
    debug_assert_eq!(left, 0);
    shares
}

#[cfg(test)]
mod tests {
    use super::pro_rata;

    #[test]
    fn pro_rata_rounds_down_and_hands_the_rest_to_the_largest_remainders() {
        assert_eq!(pro_rata(10, &[10, 10, 10]), vec![4, 3, 3]);
        assert_eq!(pro_rata(100, &[50, 30, 20]), vec![50, 30, 20]);
        assert_eq!(pro_rata(7, &[10, 30]), vec![2, 5]);
        assert_eq!(pro_rata(0, &[10, 30]), vec![0, 0]);
        assert_eq!(pro_rata(5, &[]), Vec::<u64>::new());
        // Never more than the weight, even if asked for more than the total.
        assert_eq!(pro_rata(100, &[3, 4]), vec![3, 4]);
    }
}
