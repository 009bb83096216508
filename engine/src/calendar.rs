//! The one calendar the rules are read in (DOMAIN.md, "Instruments").
//!
//! - **Anniversaries** are in UTC: the anniversary `n` years after a time is the same month, day
//!   and time of day `n` years later. The anniversary of 29 February in a year without one is
//!   1 March, so a period measured in anniversaries is never shorter than its years.
//! - **Years elapsed are actual/actual**: the whole years between anniversaries, plus the time
//!   since the last anniversary over the length of the year that runs to the next one (365 or 366
//!   days, to the nanosecond). A leap year's full return therefore arrives on its anniversary and
//!   not a day early, and a lock-in of five years ends on the fifth anniversary, never before.
//!
//! Times are nanoseconds since the Unix epoch (`Timestamp`); the engine is given them with each
//! command and never reads a clock.

use crate::command::Timestamp;
use crate::config::BP_ONE;

/// Nanoseconds in a day: days are fixed in UTC, with no leap seconds.
pub const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// A calendar date in the proleptic Gregorian calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days since 1970-01-01 of a date (H. Hinnant's `days_from_civil`).
pub fn days_from_date(date: Date) -> i64 {
    let year = if date.month <= 2 {
        date.year - 1
    } else {
        date.year
    };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(date.month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(date.day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
pub fn date_from_days(days: i64) -> Date {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    Date { year, month, day }
}

/// The UTC date of a time.
pub fn date_of(time: Timestamp) -> Date {
    date_from_days((time / NS_PER_DAY) as i64)
}

/// The anniversary `years` after `start`, saturating at the end of representable time.
pub fn anniversary(start: Timestamp, years: u32) -> Timestamp {
    let time_of_day = start % NS_PER_DAY;
    let date = date_of(start);
    let year = date.year + i64::from(years);
    let target = if date.month == 2 && date.day == 29 && !is_leap_year(year) {
        Date {
            year,
            month: 3,
            day: 1,
        }
    } else {
        Date {
            year,
            month: date.month,
            day: date.day,
        }
    };
    let days = days_from_date(target);
    // `start` is after the epoch, so `days` is positive.
    (days as u64)
        .checked_mul(NS_PER_DAY)
        .and_then(|midnight| midnight.checked_add(time_of_day))
        .unwrap_or(Timestamp::MAX)
}

/// Years elapsed from `start` to `now`, actual/actual: whole anniversaries passed, and the
/// nanoseconds since the last one over the length of the year that runs to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YearsElapsed {
    pub whole: u32,
    /// Nanoseconds since the last anniversary (or since `start`).
    pub into_year_ns: u64,
    /// Length of the current anniversary year, in nanoseconds.
    pub year_ns: u64,
}

/// Years elapsed from `start` to `now` (zero when `now` is not after `start`).
pub fn years_elapsed(start: Timestamp, now: Timestamp) -> YearsElapsed {
    if now <= start {
        return YearsElapsed {
            whole: 0,
            into_year_ns: 0,
            year_ns: anniversary(start, 1) - start,
        };
    }
    let gap = date_of(now).year - date_of(start).year;
    let mut whole = u32::try_from(gap.max(0)).unwrap_or(u32::MAX);
    // The calendar-year difference counts the anniversary of this year even when it has not
    // come yet: step back once if so (never below zero: the 0th anniversary is `start`, which
    // is before `now`).
    if anniversary(start, whole) > now {
        whole -= 1;
    }
    let last = anniversary(start, whole);
    let next = anniversary(start, whole.saturating_add(1));
    // At the end of representable time the next anniversary saturates; keep the year positive.
    let year_ns = next.saturating_sub(last).max(1);
    YearsElapsed {
        whole,
        into_year_ns: now - last,
        year_ns,
    }
}

/// `amount × rate_bp / 10 000 × years elapsed from start to now`, rounded down (the holder's
/// disfavour, by less than one unit of `amount`), saturating at `u64::MAX`.
pub fn accrue(amount: u64, rate_bp: u32, start: Timestamp, now: Timestamp) -> u64 {
    accrue_exact(amount, rate_bp, start, now).0
}

/// As `accrue`, rounded up instead: what a buyer of the accrued value pays, in its disfavour.
pub fn accrue_rounded_up(amount: u64, rate_bp: u32, start: Timestamp, now: Timestamp) -> u64 {
    let (floor, exact) = accrue_exact(amount, rate_bp, start, now);
    if exact {
        floor
    } else {
        floor.saturating_add(1)
    }
}

/// The accrual rounded down, and whether that is exact.
fn accrue_exact(amount: u64, rate_bp: u32, start: Timestamp, now: Timestamp) -> (u64, bool) {
    let years = years_elapsed(start, now);
    let bp_one = u128::from(BP_ONE);
    let year_ns = u128::from(years.year_ns);
    let rate = u128::from(amount) * u128::from(rate_bp);
    // rate × (whole + into / year) / BP, floored exactly. With rate × whole = a·BP + r and
    // rate × into = b·(BP·year) + s, the sum is a + b + (r·year + s) / (BP·year), whose last
    // term is below 2 and needs no more than 70 bits.
    let whole = rate * u128::from(years.whole);
    let (a, r) = (whole / bp_one, whole % bp_one);
    let (b, s) = mul_div_rem(rate, years.into_year_ns, bp_one * year_ns);
    let spill = r * year_ns + s;
    let total = a + b + spill / (bp_one * year_ns);
    match u64::try_from(total) {
        Ok(total) => (total, spill % (bp_one * year_ns) == 0),
        Err(_) => (u64::MAX, true),
    }
}

/// `rate × x` divided by `divisor`: (quotient, remainder), for `rate < 2^96`, `divisor < 2^96`.
/// Multiplies by the high and low 32 bits of `x` apart so every intermediate fits a u128.
fn mul_div_rem(rate: u128, x: u64, divisor: u128) -> (u128, u128) {
    let high = rate * u128::from(x >> 32);
    let low = rate * u128::from(x & 0xFFFF_FFFF);
    let spill = ((high % divisor) << 32) + low % divisor;
    (
        ((high / divisor) << 32) + low / divisor + spill / divisor,
        spill % divisor,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1_000_000_000;

    /// Midnight UTC of a date, by walking the calendar a day at a time from the epoch: a
    /// reference that shares nothing with the closed-form conversion under test.
    fn walked_midnight(year: i64, month: u32, day: u32) -> Timestamp {
        let month_days = |y: i64, m: u32| match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if is_leap_year(y) => 29,
            _ => 28,
        };
        let mut days = 0u64;
        for y in 1970..year {
            days += if is_leap_year(y) { 366 } else { 365 };
        }
        for m in 1..month {
            days += month_days(year, m);
        }
        (days + u64::from(day) - 1) * NS_PER_DAY
    }

    #[test]
    fn dates_agree_with_a_day_by_day_walk_for_five_centuries() {
        let mut midnight = 0;
        let mut expected = Date {
            year: 1970,
            month: 1,
            day: 1,
        };
        for _ in 0..(500 * 365) {
            assert_eq!(date_of(midnight), expected);
            assert_eq!(
                date_of(midnight + NS_PER_DAY - 1),
                expected,
                "the last nanosecond of a day is still that day"
            );
            assert_eq!(days_from_date(expected) as u64 * NS_PER_DAY, midnight);
            midnight += NS_PER_DAY;
            let month_len = (walked_midnight(
                expected.year + i64::from(expected.month / 12),
                expected.month % 12 + 1,
                1,
            ) - walked_midnight(expected.year, expected.month, 1))
                / NS_PER_DAY;
            expected = if u64::from(expected.day) < month_len {
                Date {
                    day: expected.day + 1,
                    ..expected
                }
            } else if expected.month < 12 {
                Date {
                    year: expected.year,
                    month: expected.month + 1,
                    day: 1,
                }
            } else {
                Date {
                    year: expected.year + 1,
                    month: 1,
                    day: 1,
                }
            };
        }
    }

    #[test]
    fn leap_years_follow_the_gregorian_rule() {
        assert!(is_leap_year(2024) && is_leap_year(2000) && is_leap_year(2400));
        assert!(!is_leap_year(2023) && !is_leap_year(1900) && !is_leap_year(2100));
    }

    #[test]
    fn anniversaries_keep_the_date_and_time_of_day() {
        let start = walked_midnight(2024, 1, 1) + 13 * 3600 * NS + 7;
        assert_eq!(anniversary(start, 0), start);
        assert_eq!(
            anniversary(start, 1),
            walked_midnight(2025, 1, 1) + 13 * 3600 * NS + 7
        );
        assert_eq!(
            anniversary(start, 5),
            walked_midnight(2029, 1, 1) + 13 * 3600 * NS + 7
        );
        assert_eq!(
            anniversary(start, 30),
            walked_midnight(2054, 1, 1) + 13 * 3600 * NS + 7
        );
    }

    #[test]
    fn the_anniversary_of_a_leap_day_is_the_first_of_march_in_common_years() {
        let leap_day = walked_midnight(2024, 2, 29) + 5;
        assert_eq!(anniversary(leap_day, 1), walked_midnight(2025, 3, 1) + 5);
        assert_eq!(anniversary(leap_day, 4), walked_midnight(2028, 2, 29) + 5);
        assert_eq!(
            anniversary(leap_day, 76),
            walked_midnight(2100, 3, 1) + 5,
            "2100 is not a leap year"
        );
    }

    #[test]
    fn only_the_twenty_ninth_of_february_moves_to_the_first_of_march() {
        for (year, month, day) in [
            (2024, 1, 29),
            (2024, 3, 29),
            (2024, 2, 28),
            (2023, 2, 28),
            (2024, 12, 29),
        ] {
            let start = walked_midnight(year, month, day) + 11;
            assert_eq!(
                anniversary(start, 1),
                walked_midnight(year + 1, month, day) + 11,
                "{year}-{month}-{day}"
            );
        }
    }

    #[test]
    fn before_and_at_the_start_nothing_has_elapsed_of_a_year_of_actual_length() {
        let start = walked_midnight(2024, 1, 1);
        for now in [start, start - 1, 0] {
            let elapsed = years_elapsed(start, now);
            assert_eq!(
                (elapsed.whole, elapsed.into_year_ns, elapsed.year_ns),
                (0, 0, 366 * NS_PER_DAY)
            );
        }
    }

    #[test]
    fn fractions_of_whole_years_and_of_the_current_year_carry_into_the_total() {
        // 9 999 × 0.01 % × 1.5 years = 1.49985: the whole year leaves 0.9999, the half year
        // 0.49995, and only their sum reaches one unit.
        let start = walked_midnight(2025, 1, 1);
        let half_past_one_year = walked_midnight(2026, 1, 1) + 365 * NS_PER_DAY / 2;
        assert_eq!(accrue(9_999, 1, start, half_past_one_year), 1);
        // 3 × 50 % × (1 + 1/3) years is exactly 2: rounding up leaves it at 2.
        let a_third_past_one_year = walked_midnight(2026, 1, 1) + 365 * NS_PER_DAY / 3;
        assert_eq!(
            (
                accrue(3, 5_000, start, a_third_past_one_year),
                accrue_rounded_up(3, 5_000, start, a_third_past_one_year)
            ),
            (2, 2)
        );
        assert_eq!(
            accrue_rounded_up(3, 5_000, start, a_third_past_one_year + 1),
            3
        );
    }

    #[test]
    fn whole_years_change_exactly_at_the_anniversary() {
        let start = walked_midnight(2024, 1, 1);
        for years in [1u32, 4, 5, 10, 37] {
            let at = anniversary(start, years);
            assert_eq!(
                years_elapsed(start, at - 1).whole,
                years - 1,
                "{years} years less 1 ns"
            );
            assert_eq!(
                years_elapsed(start, at).whole,
                years,
                "{years} years exactly"
            );
            assert_eq!(years_elapsed(start, at).into_year_ns, 0);
            assert_eq!(years_elapsed(start, at + 1).whole, years);
        }
    }

    #[test]
    fn the_year_length_is_the_actual_one_running_to_the_next_anniversary() {
        // From 2024-01-01 the first year holds 29 February: 366 days. The second does not.
        let start = walked_midnight(2024, 1, 1);
        assert_eq!(years_elapsed(start, start + NS).year_ns, 366 * NS_PER_DAY);
        assert_eq!(
            years_elapsed(start, walked_midnight(2025, 6, 1)).year_ns,
            365 * NS_PER_DAY
        );
        // From 2023-03-01 the first year runs to 2024-03-01 across a leap day.
        let march = walked_midnight(2023, 3, 1);
        assert_eq!(years_elapsed(march, march + NS).year_ns, 366 * NS_PER_DAY);
    }

    #[test]
    fn a_leap_years_full_return_arrives_on_its_anniversary_not_a_day_early() {
        // 1 000 000 minor units at 5 %: 50 000 for the year 2024 (366 days).
        let start = walked_midnight(2024, 1, 1);
        let anniversary_1 = walked_midnight(2025, 1, 1);
        assert_eq!(accrue(1_000_000, 500, start, anniversary_1), 50_000);
        assert!(
            accrue(1_000_000, 500, start, anniversary_1 - NS_PER_DAY) < 50_000,
            "a day before the anniversary is short of the year"
        );
        assert_eq!(accrue(1_000_000, 500, start, anniversary_1 - 1), 49_999);
        // Half of a 366-day year, to the nanosecond.
        assert_eq!(
            accrue(1_000_000, 500, start, start + 183 * NS_PER_DAY),
            25_000
        );
        assert_eq!(
            accrue(1_000_000, 500, start, start + 183 * NS_PER_DAY - 1),
            24_999
        );
    }

    #[test]
    fn accrual_across_decades_is_whole_years_plus_the_fraction_of_the_current_one() {
        let start = walked_midnight(2001, 7, 15);
        // 23 whole years and half of a 365-day year (the year from 2024-07-15 holds no leap day).
        let now = walked_midnight(2024, 7, 15) + 365 * NS_PER_DAY / 2;
        assert_eq!(accrue(1_000_000, 300, start, now), 23 * 30_000 + 15_000);
        assert_eq!(accrue(1_000_000, 300, start, start), 0);
        assert_eq!(
            accrue(1_000_000, 300, start, start - 1),
            0,
            "before the start nothing accrues"
        );
    }

    #[test]
    fn accrual_rounded_up_differs_from_rounded_down_only_when_inexact() {
        let start = walked_midnight(2025, 1, 1);
        let year = walked_midnight(2026, 1, 1);
        // 1 000 × 3.33 % = 33.3 for a year: 33 down, 34 up; 1 000 × 5 % = 50 exactly either way.
        assert_eq!(
            (
                accrue(1_000, 333, start, year),
                accrue_rounded_up(1_000, 333, start, year)
            ),
            (33, 34)
        );
        assert_eq!(
            (
                accrue(1_000, 500, start, year),
                accrue_rounded_up(1_000, 500, start, year)
            ),
            (50, 50)
        );
        assert_eq!(accrue_rounded_up(1_000, 500, start, start), 0);
        // A fraction of a nanosecond's worth still rounds up.
        assert_eq!(accrue_rounded_up(1, 1, start, start + 1), 1);
    }

    #[test]
    fn accrual_is_exact_for_the_largest_amounts_and_saturates_beyond_the_ledger() {
        let start = walked_midnight(2024, 1, 1);
        let one_year = walked_midnight(2025, 1, 1);
        // 100 % of u64::MAX for one year is u64::MAX; for two years it saturates.
        assert_eq!(accrue(u64::MAX, 10_000, start, one_year), u64::MAX);
        assert_eq!(
            accrue(u64::MAX, 10_000, start, walked_midnight(2026, 1, 1)),
            u64::MAX
        );
        // 1 bp of u64::MAX for one year, floored.
        assert_eq!(accrue(u64::MAX, 1, start, one_year), u64::MAX / 10_000);
        // The end of representable time does not panic.
        assert!(accrue(u64::MAX, 10_000, 0, Timestamp::MAX) == u64::MAX);
        assert_eq!(years_elapsed(Timestamp::MAX - 1, Timestamp::MAX).whole, 0);
    }
}
