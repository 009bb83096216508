//! The edge between decimal amounts people type and the integers the engine counts in.
//!
//! Conversions are exact or refused: a price that is not a whole number of ticks, a quantity that
//! is not a whole number of lots, or an amount finer than the currency's minor unit is rejected
//! with its own reason, never rounded.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::command::RejectReason;
use crate::config::BP_ONE;

/// Whole-number value of `value`, if it is one and fits a u64.
fn whole_u64(value: Decimal) -> Option<u64> {
    if value.fract().is_zero() && value.is_sign_positive() {
        value.trunc().to_u64()
    } else {
        None
    }
}

fn scale_factor(currency_scale: u32) -> Decimal {
    Decimal::from(10u64.pow(currency_scale))
}

/// Cash amount → minor units (must be positive, exact, and fit the ledger).
pub fn cash_to_minor(amount: Decimal, currency_scale: u32) -> Result<u64, RejectReason> {
    if amount <= Decimal::ZERO {
        return Err(RejectReason::AmountZero);
    }
    let minor = amount
        .checked_mul(scale_factor(currency_scale))
        .ok_or(RejectReason::AmountTooLarge)?;
    if !minor.fract().is_zero() {
        return Err(RejectReason::AmountOffMinorUnit);
    }
    whole_u64(minor).ok_or(RejectReason::AmountTooLarge)
}

/// Minor units → cash amount.
pub fn minor_to_cash(minor: u64, currency_scale: u32) -> Decimal {
    Decimal::from(minor) / scale_factor(currency_scale)
}

/// Price per unit → ticks, for an instrument whose tick is `tick_size_minor` minor units.
pub fn price_to_ticks(
    price: Decimal,
    tick_size_minor: u64,
    currency_scale: u32,
) -> Result<u64, RejectReason> {
    if price <= Decimal::ZERO {
        return Err(RejectReason::PriceNotPositive);
    }
    let minor = price
        .checked_mul(scale_factor(currency_scale))
        .ok_or(RejectReason::PriceAboveCeiling)?;
    if !minor.fract().is_zero() {
        return Err(RejectReason::PriceOffTick);
    }
    let ticks = minor
        .checked_div(Decimal::from(tick_size_minor))
        .ok_or(RejectReason::PriceOffTick)?;
    // Decimal division rounds past 28 digits: a quotient is only trusted if it multiplies back.
    if !ticks.fract().is_zero()
        || ticks.is_zero()
        || ticks.checked_mul(Decimal::from(tick_size_minor)) != Some(minor)
    {
        return Err(RejectReason::PriceOffTick);
    }
    whole_u64(ticks).ok_or(RejectReason::PriceAboveCeiling)
}

/// Ticks → price per unit.
pub fn ticks_to_price(ticks: u64, tick_size_minor: u64, currency_scale: u32) -> Decimal {
    Decimal::from(u128::from(ticks) * u128::from(tick_size_minor)) / scale_factor(currency_scale)
}

/// Quantity in units → lots (must be positive and a whole number of lots).
pub fn units_to_lots(units: Decimal, lot_size_units: u64) -> Result<u64, RejectReason> {
    if units <= Decimal::ZERO {
        return Err(RejectReason::QuantityZero);
    }
    let lots = units
        .checked_div(Decimal::from(lot_size_units))
        .ok_or(RejectReason::QuantityOffLot)?;
    // Decimal division rounds past 28 digits (a tiny quantity over a huge lot rounds to zero
    // lots): a quotient is only trusted if it is positive and multiplies back exactly.
    if !lots.fract().is_zero()
        || lots.is_zero()
        || lots.checked_mul(Decimal::from(lot_size_units)) != Some(units)
    {
        return Err(RejectReason::QuantityOffLot);
    }
    whole_u64(lots).ok_or(RejectReason::QuantityTooLarge)
}

/// Lots → quantity in units.
pub fn lots_to_units(lots: u64, lot_size_units: u64) -> Decimal {
    Decimal::from(u128::from(lots) * u128::from(lot_size_units))
}

/// A rate as a fraction (0.05 for 5 %) → basis points, exact.
pub fn rate_to_bp(rate: Decimal) -> Option<u32> {
    let bp = rate.checked_mul(Decimal::from(BP_ONE))?;
    if rate.is_sign_negative() || !bp.fract().is_zero() {
        return None;
    }
    bp.trunc().to_u32()
}

/// Basis points → a rate as a fraction.
pub fn bp_to_rate(bp: u32) -> Decimal {
    Decimal::from(bp) / Decimal::from(BP_ONE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn prices_convert_exactly_or_not_at_all() {
        // Tick of 5 cents in a 2-decimal currency.
        assert_eq!(price_to_ticks(d("10.25"), 5, 2), Ok(205));
        assert_eq!(
            price_to_ticks(d("10.26"), 5, 2),
            Err(RejectReason::PriceOffTick)
        );
        assert_eq!(
            price_to_ticks(d("10.255"), 5, 2),
            Err(RejectReason::PriceOffTick)
        );
        assert_eq!(
            price_to_ticks(d("-1"), 5, 2),
            Err(RejectReason::PriceNotPositive)
        );
        assert_eq!(
            price_to_ticks(d("0"), 5, 2),
            Err(RejectReason::PriceNotPositive)
        );
        assert_eq!(ticks_to_price(205, 5, 2), d("10.25"));
    }

    #[test]
    fn quantities_and_cash_convert_exactly_or_not_at_all() {
        assert_eq!(units_to_lots(d("30"), 10), Ok(3));
        assert_eq!(
            units_to_lots(d("35"), 10),
            Err(RejectReason::QuantityOffLot)
        );
        assert_eq!(units_to_lots(d("-10"), 10), Err(RejectReason::QuantityZero));
        assert_eq!(
            units_to_lots(d("1e20"), 1),
            Err(RejectReason::QuantityTooLarge)
        );
        assert_eq!(cash_to_minor(d("12.34"), 2), Ok(1234));
        assert_eq!(
            cash_to_minor(d("12.345"), 2),
            Err(RejectReason::AmountOffMinorUnit)
        );
        assert_eq!(cash_to_minor(d("0"), 2), Err(RejectReason::AmountZero));
        assert_eq!(
            cash_to_minor(d("79228162514264337593543950335"), 2),
            Err(RejectReason::AmountTooLarge)
        );
        assert_eq!(minor_to_cash(1234, 2), d("12.34"));
        assert_eq!(rate_to_bp(d("0.05")), Some(500));
        assert_eq!(rate_to_bp(d("0.00005")), None);
    }
}
